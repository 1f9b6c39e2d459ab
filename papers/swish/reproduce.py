"""Trains every activation of the Swish paper's table over several seeds and writes the result table and plots.

  python -m papers.swish.reproduce [--sweep configs/sweeps/swish_reproduce.py] [--workdir DIR] [--readme FILE] \
      [--address auto|HOST:PORT] [--max-concurrent N]   # on Ray: docs/sweeps.md

Sweeps: swish_reproduce (the default: resnet_tiny trained to a plateau, test accuracy along the way) and
swish_activations (ResNet-20 for 400 steps, the fast scale). Writes the README block named after the sweep file
(median test accuracy per activation, its gain over ReLU), <sweep>.png (accuracy per activation) and, where the
runs evaluated during training, <sweep>_curves.png (the learning curves the verdict's plateau is read from) beside
the README. Finished runs are not retrained: rerunning only re-evaluates them, so an interrupted reproduction
resumes where it stopped.
"""

import statistics

from common import app, report, results, sweep
from papers.swish import train

SWEEP_FILE = "configs/sweeps/swish_reproduce.py"
PLOT = "{sweep}.png"
CURVES = "{sweep}_curves.png"
BLOCK = "{sweep}"
# Table 3 (CIFAR-10, ResNet-164, median of 5 runs) and the paper's tally over its 9 CIFAR settings.
PAPER_NUMBERS = {
    "swish": "C10 ResNet-164: Swish 94.5 vs ReLU 93.8; ahead of ReLU in 9 of 9 CIFAR settings",
    "swish1": "C10 ResNet-164: Swish-1 94.7 vs ReLU 93.8",
}


def summarise(results: list[tuple[dict, dict]]) -> dict[str, list[float]]:
    """activation -> test accuracies (one per seed), in sweep order."""
    accuracies: dict[str, list[float]] = {}
    for point, metrics in results:
        accuracies.setdefault(point["model.activation"], []).append(metrics["eval/accuracy"])
    return accuracies


def gain_over_relu(accuracies: dict[str, list[float]], name: str) -> float | None:
    """Median test accuracy of `name` minus ReLU's (fractions); None without ReLU runs."""
    if "relu" not in accuracies:
        return None
    return statistics.median(accuracies[name]) - statistics.median(accuracies["relu"])


def render_table(accuracies: dict[str, list[float]]) -> str:
    rows = []
    for name, values in sorted(accuracies.items(), key=lambda kv: -statistics.median(kv[1])):
        gain = gain_over_relu(accuracies, name)
        delta = f"{100 * gain:+.2f}" if gain is not None else "n/a"
        rows.append(
            [
                name,
                f"{100 * statistics.median(values):.2f}",
                f"{100 * min(values):.2f} - {100 * max(values):.2f}",
                delta,
                len(values),
            ]
        )
    return report.markdown_table(
        ["activation", "median test acc. (%)", "min - max (%)", "vs ReLU (points)", "runs"], rows
    )


def claims(reproduction: sweep.Reproduction) -> list[results.Claim]:
    """Swish and Swish-1 against ReLU: the table's median gain against the larger seed sd of the two, gated on
    the learning curves (mean over seeds; test accuracy where the runs evaluated during training, else the
    training loss) of both reaching a plateau."""
    finished = reproduction.finished
    accuracies = summarise(finished.results)
    metric = results.plateau_metric(finished.base)
    plot, curves = results.figure_names(reproduction, PLOT, CURVES)
    outcomes = []
    for name, paper in PAPER_NUMBERS.items():
        claim = f"{name} beats ReLU"
        gain = gain_over_relu(accuracies, name) if name in accuracies else None
        if gain is None:
            outcomes.append(results.Claim(claim, paper, f"no {name} and ReLU runs", "not tested", "sweep lacks them"))
            continue
        spread = max(statistics.stdev(accuracies[n]) if len(accuracies[n]) > 1 else 0.0 for n in (name, "relu"))
        plateau = results.all_plateau(
            [
                results.runs_plateau(
                    results.workdirs_where(reproduction, lambda point, _, a=activation: point["model.activation"] == a),
                    metric,
                )
                for activation in (name, "relu")
            ]
        )
        verdict, why = results.gate_on_plateau(
            *results.lead_verdict(results.gap_against_spread(gain, spread), name), *plateau
        )
        measured = (
            f"median test accuracy {100 * statistics.median(accuracies[name]):.2f}% vs ReLU "
            f"{100 * statistics.median(accuracies['relu']):.2f}% ({100 * gain:+.2f} points, larger seed sd "
            f"{100 * spread:.2f})"
        )
        outcomes.append(results.Claim(claim, paper, measured, verdict, why, curves or plot, plateau[0]))
    return outcomes


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
    plot, curves = results.figure_names(reproduction, PLOT, CURVES)
    render_plot(accuracies, reproduction.plot_path(plot), f"{setting}\neach dot a seed, bar = median")
    figures = f"![accuracy per activation]({plot})"
    if curves:
        results.plot_group_curves(
            reproduction, lambda point: point["model.activation"], reproduction.plot_path(curves), setting
        )
        figures += f"\n\n![test accuracy along training, mean over seeds]({curves})"
    return f"{render_table(accuracies)}\n\n{figures}\n\n" + reproduction.provenance(setting)


if __name__ == "__main__":
    sweep.define_reproduce_flags(__file__, SWEEP_FILE)
    app.run(sweep.reproduce_main(__file__, BLOCK, train.train_and_evaluate, render, claims))
