"""Trains every activation of the Swish paper's table over several seeds and writes the result table and plot.

  python -m papers.swish.benchmark --workdir workdirs/swish/benchmark --readme papers/swish/README.md

The sweep is configs/sweeps/swish_activations.py. Finished runs are not retrained: rerunning only re-evaluates
them, so an interrupted benchmark resumes where it stopped.
"""

import argparse
import os
import statistics
import sys
import time

from common import app, report, sweep
from papers.swish import train

SWEEP_FILE = "configs/sweeps/swish_activations.py"
PLOT_PATH = "papers/swish/activations.png"


def summarise(results: list[tuple[dict, dict]]) -> dict[str, list[float]]:
    """activation -> test accuracies (one per seed), in sweep order."""
    accuracies: dict[str, list[float]] = {}
    for point, metrics in results:
        accuracies.setdefault(point["model.activation"], []).append(metrics["eval/accuracy"])
    return accuracies


def render_table(accuracies: dict[str, list[float]]) -> str:
    relu = statistics.median(accuracies["relu"]) if "relu" in accuracies else None
    rows = []
    for name, values in sorted(accuracies.items(), key=lambda kv: -statistics.median(kv[1])):
        median = statistics.median(values)
        delta = f"{100 * (median - relu):+.2f}" if relu is not None else "n/a"
        rows.append(
            [name, f"{100 * median:.2f}", f"{100 * min(values):.2f} - {100 * max(values):.2f}", delta, len(values)]
        )
    return report.markdown_table(
        ["activation", "median test acc. (%)", "min - max (%)", "vs ReLU (points)", "runs"], rows
    )


def render_plot(accuracies: dict[str, list[float]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(accuracies, key=lambda n: statistics.median(accuracies[n]))
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    for i, name in enumerate(names):
        values = [100 * v for v in accuracies[name]]
        ax.scatter([i] * len(values), values, color="tab:blue", alpha=0.6, s=18)
        ax.hlines(statistics.median(values), i - 0.3, i + 0.3, color="black", linewidth=2)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("Fashion-MNIST test accuracy (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="workdirs/swish/benchmark")
    parser.add_argument("--readme", default="papers/swish/README.md")
    parser.add_argument("--sweep", default=SWEEP_FILE)
    args = parser.parse_args(argv)
    app.prepare_environment()
    started = time.time()
    definition = sweep.load_sweep(args.sweep)
    results = sweep.run_sweep(definition, train.train_and_evaluate, args.workdir)
    minutes = (time.time() - started) / 60
    accuracies = summarise(results)
    base = sweep.load_config(definition.config)
    setting = (
        f"{base.model.name} on {base.dataset.name}, {base.train.num_steps} steps of batch {base.dataset.batch_size}"
    )
    render_plot(accuracies, PLOT_PATH, f"{setting}\neach dot a seed, bar = median")
    table = render_table(accuracies)
    command = f"`python -m papers.swish.benchmark --workdir {args.workdir} --readme {args.readme}` (`make reproduce`)"
    block = f"{table}\n\n![accuracy per activation]({os.path.basename(PLOT_PATH)})\n\n" + sweep.provenance(
        command, args.sweep, args.workdir, results, setting, minutes
    )
    report.replace_block(args.readme, "benchmark", block)
    print(table)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
