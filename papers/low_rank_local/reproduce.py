"""Trains the LRLC rank table (LRLC at several ranks, conv, dense LC, wide conv; three seeds) and writes its README
block, plots and claims record.

  python -m papers.low_rank_local.reproduce [--sweep configs/sweeps/lrlc_reproduce.py] [--workdir DIR] \
      [--readme FILE] [--address auto|HOST:PORT] [--max-concurrent N]   # on Ray: docs/sweeps.md

Sweeps: lrlc_reproduce (the default: width 8 trained to a plateau, test accuracy along the way) and lrlc_rank
(width 16 for 300 steps of batch 32, the fast scale). The block named after the sweep file holds a table of test
accuracy per layer (mean ± sd over the seeds and each seed's value, with the network's parameter count), the
verdict on each claim with its numbers, <sweep>.png (accuracy against rank) and, where the runs evaluated during
training, <sweep>_curves.png (the learning curves the plateau is read from). Finished runs are not retrained:
rerunning only re-evaluates them, so an interrupted reproduction resumes where it stopped.
"""

import statistics

from common import app, report, results, sweep
from common.nn import counting
from papers.low_rank_local import train

SWEEP_FILE = "configs/sweeps/lrlc_reproduce.py"
PLOT = "{sweep}.png"
CURVES = "{sweep}_curves.png"
BLOCK = "{sweep}"
BASELINE_LABELS = {"conv": "conv", "lc": "LC (dense)", "wide_conv": "wide conv"}
PAPER_RANK_CLAIM = (
    "an intermediate rank K beats both convolution and full local connectivity on MNIST, CIFAR-10 and CelebA "
    "(accuracy tables not retrieved)"
)
PAPER_WIDE_CLAIM = "LRLC beats a wider convolution with the same number of parameters (accuracy tables not retrieved)"


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


def _plateau(reproduction: sweep.Reproduction, labels: list[str]) -> tuple[bool, str]:
    """Whether the mean curve of each labelled row's runs (seeds) reached a plateau."""
    metric = results.plateau_metric(reproduction.finished.base)
    return results.all_plateau(
        [
            results.runs_plateau(
                results.workdirs_where(reproduction, lambda point, _, label=label: row_label(point) == label), metric
            )
            for label in labels
        ]
    )


def _lead_claim(reproduction, claim, paper, leader, others, figure) -> results.Claim:
    """`leader` (a row label) against the best of `others` on mean test accuracy: ahead only by more than the
    larger seed sd of the two (results.compare_groups), and only on learning curves that reached a plateau."""
    rows = accuracies_by_row(reproduction.finished.results)
    rival = max(others, key=lambda label: statistics.mean(rows[label]))
    found = results.compare_groups(rows[leader], rows[rival], ("leader", "rival"))
    plateau = _plateau(reproduction, [leader, *others])
    verdict, why = results.gate_on_plateau(*results.lead_verdict(found["word"], leader), *plateau)
    means = ", ".join(f"{label} {sweep.mean_and_spread_percent(rows[label])}%" for label in (leader, *others))
    measured = (
        f"{means} mean test accuracy ({100 * found['gap']:+.2f} points over {rival}, larger seed sd "
        f"{100 * found['spread']:.2f})"
    )
    return results.Claim(claim, paper, measured, verdict, why, figure, plateau[0])


def claims(reproduction: sweep.Reproduction) -> list[results.Claim]:
    """The best LRLC rank against conv and dense LC, and LRLC at the wide conv's matched rank against the wide
    conv, each gated on its rows' learning curves (test accuracy where the runs evaluated during training, else the
    training loss) reaching a plateau."""
    finished = reproduction.finished
    rows = accuracies_by_row(finished.results)
    plot, curves = results.figure_names(reproduction, PLOT, CURVES)
    figure = curves or plot
    ranks = [label for label in rows if label.startswith("LRLC")]
    outcomes = []
    rank_claim = "An intermediate LRLC rank beats both convolution and dense local connectivity"
    if ranks and {"conv", "LC (dense)"} <= rows.keys():
        best = max(ranks, key=lambda label: statistics.mean(rows[label]))
        outcomes.append(_lead_claim(reproduction, rank_claim, PAPER_RANK_CLAIM, best, ["conv", "LC (dense)"], figure))
    else:
        outcomes.append(
            results.Claim(
                rank_claim, PAPER_RANK_CLAIM, "no LRLC, conv or LC runs", "not tested", "the sweep lacks them"
            )
        )
    matched = f"LRLC K={finished.base.model.rank}"  # the rank wide_conv's width is matched to
    wide_claim = "LRLC beats the wider convolution with its parameter count"
    if {matched, "wide conv"} <= rows.keys():
        outcomes.append(_lead_claim(reproduction, wide_claim, PAPER_WIDE_CLAIM, matched, ["wide conv"], figure))
    else:
        outcomes.append(
            results.Claim(
                wide_claim, PAPER_WIDE_CLAIM, f"no {matched} and wide conv runs", "not tested", "the sweep lacks them"
            )
        )
    return outcomes


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
    pairs, base = reproduction.finished.results, reproduction.finished.base
    params = {}
    for point, _ in pairs:
        model, _ = train.build_for_dry_run(sweep.apply_overrides(base, point))
        params[row_label(point)] = counting.count_params(model)
    setting = (
        f"3 layers of 3x3/{base.model.widths[0]} (VALID, BN, ReLU) on {base.dataset.name}, {base.train.num_steps} "
        f"steps of batch {base.dataset.batch_size}"
    )
    plot, curves = results.figure_names(reproduction, PLOT, CURVES)
    render_plot(pairs, reproduction.plot_path(plot), f"{setting}\neach dot a seed")
    figures = f"![accuracy against rank]({plot})"
    if curves:
        results.plot_group_curves(reproduction, row_label, reproduction.plot_path(curves), setting)
        figures += f"\n\n![test accuracy along training, mean over seeds]({curves})"
    verdicts = "\n".join(f"- {c.claim}: **{c.verdict}** ({c.why}). {c.measured}." for c in claims(reproduction))
    return f"{render_table(pairs, params)}\n\n{verdicts}\n\n{figures}\n\n" + reproduction.provenance(setting)


if __name__ == "__main__":
    sweep.define_reproduce_flags(__file__, SWEEP_FILE)
    app.run(sweep.reproduce_main(__file__, BLOCK, train.train_and_evaluate, render, claims))
