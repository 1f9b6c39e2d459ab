"""The paper's ablations at CPU scale: trains configs/sweeps/sasa_ablation.py and writes its tables and plot.

  python -m papers.stand_alone_attention.ablation --workdir workdirs/stand_alone_attention/ablation \
      --readme papers/stand_alone_attention/README.md

Spatial extent k, positional encoding (none / absolute / relative) and attention placement (early / late stage),
several seeds each, on offline Fashion-MNIST (see the sweep file for the grid and its run time). The results go
into the README's `small_scale` block: one table per factor (every run of that factor's value, pooled over the
other factors and the seeds), a table of every grid cell, and a plot of the three factors. Finished runs are not
retrained: rerunning only re-evaluates them, so an interrupted ablation resumes where it stopped.
"""

import argparse
import os
import statistics
import sys
import time

from common import app, report, sweep
from papers.stand_alone_attention import train

SWEEP_FILE = "configs/sweeps/sasa_ablation.py"
PLOT_PATH = "papers/stand_alone_attention/ablation.png"
FACTORS = {
    "model.kernel_size": "spatial extent k",
    "model.positional": "positional encoding",
    "model.attention_stages": "attention placement",
}


def _percent(values: list[float]) -> str:
    mean = 100 * statistics.mean(values)
    spread = f" ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{mean:.2f}{spread}"


def factor_accuracies(results: list[tuple[dict, dict]], key: str) -> dict:
    """value of `key` -> test accuracies of every run with that value (in sweep order)."""
    accuracies: dict = {}
    for point, metrics in results:
        accuracies.setdefault(point[key], []).append(metrics["eval/accuracy"])
    return accuracies


def render_factor_table(results: list[tuple[dict, dict]], key: str) -> str:
    rows = [
        [value, _percent(values), f"{100 * min(values):.2f} - {100 * max(values):.2f}", len(values)]
        for value, values in factor_accuracies(results, key).items()
    ]
    return report.markdown_table([FACTORS.get(key, key), "mean test acc. (%) ± sd", "min - max (%)", "runs"], rows)


def render_grid_table(results: list[tuple[dict, dict]]) -> str:
    """One row per grid cell (every key but the seed), its accuracy over the seeds."""
    cells: dict[tuple, list[float]] = {}
    keys = [key for key in results[0][0] if key != "seed"] if results else []
    for point, metrics in results:
        cells.setdefault(tuple(point[key] for key in keys), []).append(metrics["eval/accuracy"])
    rows = [[*cell, _percent(values), len(values)] for cell, values in cells.items()]
    return report.markdown_table([FACTORS.get(key, key) for key in keys] + ["mean test acc. (%)", "seeds"], rows)


def render_plot(results: list[tuple[dict, dict]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [key for key in FACTORS if results and key in results[0][0]]
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(3.2 * max(len(keys), 1), 3.4), dpi=120, sharey=True)
    axes = [axes] if len(keys) <= 1 else list(axes)
    for ax, key in zip(axes, keys, strict=False):
        accuracies = factor_accuracies(results, key)
        for i, values in enumerate(accuracies.values()):
            percent = [100 * v for v in values]
            ax.scatter([i] * len(percent), percent, color="tab:blue", alpha=0.6, s=14)
            ax.hlines(statistics.mean(percent), i - 0.3, i + 0.3, color="black", linewidth=2)
        ax.set_xticks(range(len(accuracies)), [str(value) for value in accuracies])
        ax.set_xlabel(FACTORS[key])
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("Fashion-MNIST test accuracy (%)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="workdirs/stand_alone_attention/ablation")
    parser.add_argument("--readme", default="papers/stand_alone_attention/README.md")
    parser.add_argument("--sweep", default=SWEEP_FILE)
    parser.add_argument("--plot", default=PLOT_PATH)
    args = parser.parse_args(argv)
    app.prepare_environment()
    started = time.time()
    definition = sweep.load_sweep(args.sweep)
    results = sweep.run_sweep(definition, train.train_and_evaluate, args.workdir)
    minutes = (time.time() - started) / 60
    base = sweep.load_config(definition.config)
    setting = (
        f"{base.model.name} (stages {tuple(base.model.stage_sizes)}, width {base.model.width}, "
        f"{base.model.num_heads} heads) on {base.dataset.name}, {base.train.num_steps} steps of batch "
        f"{base.dataset.batch_size}"
    )
    render_plot(results, args.plot, f"{setting}\neach dot a run, bar = mean")
    sections = [
        f"**{FACTORS[key]}** (pooled over the other factors and the seeds)\n\n{render_factor_table(results, key)}"
        for key in FACTORS
        if key in definition.axes
    ]
    command = f"python -m papers.stand_alone_attention.ablation --workdir {args.workdir} --readme {args.readme}"
    if args.sweep != SWEEP_FILE:
        command += f" --sweep {args.sweep}"
    command = f"`{command}`"
    block = (
        "\n\n".join(sections)
        + f"\n\n**every grid cell**\n\n{render_grid_table(results)}\n\n"
        + f"![ablation accuracies]({os.path.relpath(args.plot, os.path.dirname(os.path.abspath(args.readme)))})\n\n"
        + sweep.provenance(command, args.sweep, args.workdir, results, setting, minutes)
    )
    report.replace_block(args.readme, "small_scale", block)
    print(block)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
