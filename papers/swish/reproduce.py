"""Trains every activation of the Swish paper's table over several seeds and writes the result table and plot.

  python -m papers.swish.reproduce [--sweep configs/sweeps/swish_activations.py] [--workdir DIR] [--readme FILE] \
      [--address auto|HOST:PORT] [--max-concurrent N]   # on Ray, each run a main.py process (docs/sweeps.md)

Writes the README's `benchmark` block (median test accuracy per activation, its gain over ReLU) and
activations.png beside the README. Finished runs are not retrained: rerunning only re-evaluates them, so an
interrupted reproduction resumes where it stopped.
"""

import statistics

from common import app, report, sweep
from papers.swish import train

SWEEP_FILE = "configs/sweeps/swish_activations.py"
PLOT = "activations.png"
BLOCK = "benchmark"


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


def render(reproduction: sweep.Reproduction) -> str:
    finished = reproduction.finished
    accuracies = summarise(finished.results)
    base = finished.base
    setting = (
        f"{base.model.name} on {base.dataset.name}, {base.train.num_steps} steps of batch {base.dataset.batch_size}"
    )
    render_plot(accuracies, reproduction.plot_path(PLOT), f"{setting}\neach dot a seed, bar = median")
    return f"{render_table(accuracies)}\n\n![accuracy per activation]({PLOT})\n\n" + reproduction.provenance(setting)


if __name__ == "__main__":
    sweep.define_reproduce_flags(__file__, SWEEP_FILE)
    app.run(sweep.reproduce_main(__file__, BLOCK, train.train_and_evaluate, render))
