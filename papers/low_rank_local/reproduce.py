"""Trains configs/sweeps/lrlc_rank.py (LRLC at several ranks, conv, LC, wide conv) and writes the README block.

  python -m papers.low_rank_local.reproduce [--sweep configs/sweeps/lrlc_rank.py] [--workdir DIR] [--readme FILE] \
      [--address auto|HOST:PORT] [--max-concurrent N]   # on Ray, each run a main.py process (docs/sweeps.md)

The block (`rank_sweep` in the README) holds a table of test accuracy per layer (mean ± sd over the seeds and
each seed's value, with the network's parameter count), the accuracy-against-rank plot (rank_sweep.png beside
the README), and one sentence saying
whether the paper's claim (an LRLC rank beats both the convolution and the dense locally connected layer) holds
in these runs. Finished runs are not retrained: rerunning only re-evaluates them.
"""

import statistics

from common import app, report, results, sweep
from common.nn import counting
from papers.low_rank_local import train

SWEEP_FILE = "configs/sweeps/lrlc_rank.py"
PLOT = "rank_sweep.png"
BLOCK = "rank_sweep"
BASELINE_LABELS = {"conv": "conv", "lc": "LC (dense)", "wide_conv": "wide conv"}
PAPER_CLAIM = (
    "an intermediate rank K beats both convolution and full local connectivity on MNIST, CIFAR-10 and CelebA "
    "(accuracy tables not retrieved)"
)


def row_label(point: dict) -> str:
    layer = point["model.layer"]
    return f"LRLC K={point['model.rank']}" if layer == "lrlc" else BASELINE_LABELS.get(layer, layer)


def accuracies_by_row(results: list[tuple[dict, dict]]) -> dict[str, list[float]]:
    """row label -> test accuracies (one per seed), in sweep order."""
    rows: dict[str, list[float]] = {}
    for point, metrics in results:
        rows.setdefault(row_label(point), []).append(metrics["eval/accuracy"])
    return rows


def render_table(results: list[tuple[dict, dict]], params: dict[str, int]) -> str:
    rows = [
        [label, f"{params[label]:,}" if label in params else "n/a", sweep.mean_and_spread_percent(values)]
        + [" / ".join(f"{100 * v:.2f}" for v in values), len(values)]
        for label, values in accuracies_by_row(results).items()
    ]
    return report.markdown_table(["layer", "params", "mean test acc. (%) ± sd", "per seed (%)", "runs"], rows)


def best_rank(results: list[tuple[dict, dict]]) -> dict | None:
    """The best LRLC rank's mean test accuracy against conv and dense LC: {"best", "rank", "conv", "dense",
    "holds"}; None when the sweep lacks LRLC, conv or LC runs."""
    means = {label: statistics.mean(values) for label, values in accuracies_by_row(results).items()}
    ranks = {label: value for label, value in means.items() if label.startswith("LRLC")}
    if not ranks or "conv" not in means or "LC (dense)" not in means:
        return None
    best = max(ranks, key=ranks.get)
    conv, dense = means["conv"], means["LC (dense)"]
    return {"best": best, "rank": ranks[best], "conv": conv, "dense": dense, "holds": ranks[best] > max(conv, dense)}


def claim_statement(results: list[tuple[dict, dict]]) -> str:
    """Whether the best LRLC rank beats both conv and dense LC on mean test accuracy, with the numbers."""
    found = best_rank(results)
    if found is None:
        return "The claim cannot be judged: the sweep lacks LRLC, conv or LC runs."
    verdict = "holds here" if found["holds"] else "does not hold here"
    return (
        f"The paper's claim (an intermediate rank beats both convolution and full local connectivity) {verdict}: "
        f"the best rank, {found['best']}, reaches {100 * found['rank']:.2f}% mean test accuracy against "
        f"{100 * found['conv']:.2f}% for conv and {100 * found['dense']:.2f}% for the dense LC layer."
    )


def claims(reproduction: sweep.Reproduction) -> list[results.Claim]:
    """The claim of claim_statement, gated on the training-loss curves (mean over all runs) reaching a plateau."""
    finished = reproduction.finished
    claim = "An intermediate LRLC rank beats both convolution and dense local connectivity"
    found = best_rank(finished.results)
    if found is None:
        return [results.Claim(claim, PAPER_CLAIM, "no LRLC, conv or LC runs", "not tested", "the sweep lacks them")]
    plateau = results.runs_plateau(results.workdirs_where(reproduction, lambda *_: True), "train/loss")
    verdict, why = (
        ("reproduced", "the best rank's mean is above both baselines' means")
        if found["holds"]
        else ("not reproduced at this scale", "the best rank's mean is not above both baselines' means")
    )
    verdict, why = results.gate_on_plateau(verdict, why, *plateau)
    measured = (
        f"mean test accuracy: best rank {found['best']} {100 * found['rank']:.2f}%, conv {100 * found['conv']:.2f}%, "
        f"dense LC {100 * found['dense']:.2f}%"
    )
    return [results.Claim(claim, PAPER_CLAIM, measured, verdict, why, PLOT, plateau[0])]


def render_plot(results: list[tuple[dict, dict]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_rank: dict[int, list[float]] = {}
    for point, metrics in results:
        if point["model.layer"] == "lrlc":
            by_rank.setdefault(point["model.rank"], []).append(100 * metrics["eval/accuracy"])
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    ranks = sorted(by_rank)
    for rank in ranks:
        ax.scatter([rank] * len(by_rank[rank]), by_rank[rank], color="tab:blue", alpha=0.5, s=14)
    ax.plot(ranks, [statistics.mean(by_rank[r]) for r in ranks], "o-", color="tab:blue", label="LRLC (mean)")
    rows = accuracies_by_row(results)
    for label, colour in zip(BASELINE_LABELS.values(), ("tab:orange", "tab:green", "tab:red"), strict=True):
        if label in rows:
            ax.axhline(100 * statistics.mean(rows[label]), color=colour, linestyle="--", label=f"{label} (mean)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ranks, [str(r) for r in ranks])
    ax.set_xlabel("rank K")
    ax.set_ylabel("Fashion-MNIST test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def render(reproduction: sweep.Reproduction) -> str:
    results, base = reproduction.finished.results, reproduction.finished.base
    params = {}
    for point, _ in results:
        model, _ = train.build_for_dry_run(sweep.apply_overrides(base, point))
        params[row_label(point)] = counting.count_params(model)
    setting = (
        f"3 layers of 3x3/{base.model.widths[0]} (VALID, BN, ReLU) on {base.dataset.name}, {base.train.num_steps} "
        f"steps of batch {base.dataset.batch_size}"
    )
    render_plot(results, reproduction.plot_path(PLOT), f"{setting}\neach dot a seed")
    return (
        f"{render_table(results, params)}\n\n{claim_statement(results)}\n\n"
        + f"![accuracy against rank]({PLOT})\n\n"
        + reproduction.provenance(setting)
    )


if __name__ == "__main__":
    sweep.define_reproduce_flags(__file__, SWEEP_FILE)
    app.run(sweep.reproduce_main(__file__, BLOCK, train.train_and_evaluate, render, claims))
