"""The paper's ablations at CPU scale: trains a sweep and writes its README block, plots and claims record.

  python -m papers.stand_alone_attention.reproduce [--sweep configs/sweeps/sasa_reproduce.py] [--workdir DIR] \
      [--readme FILE] \
      [--address auto|HOST:PORT] [--max-concurrent N]   # on Ray, each run a main.py process (docs/sweeps.md)

Spatial extent k, positional encoding (none / absolute / relative), attention placement (early / late stage) and
the 3x3 conv baseline, several seeds each, on offline Fashion-MNIST. Two sweeps, each with its README block named
after the sweep file:
- sasa_reproduce (the default): one factor at a time around a base cell, trained to a plateau with test accuracy
  along the way. The block holds a table of every cell (its parameter count, mean ± sd and each seed), the
  verdict on each claim (the base cell against the cell that differs from it in that factor only, gated on both
  cells' learning curves reaching a plateau), <sweep>.png (each run's accuracy per cell) and <sweep>_curves.png.
- sasa_ablation (the fast scale): the full k x positional x placement grid for 250 steps. The block holds one
  table per factor (pooled over the other factors and the seeds), a table of every grid cell and <sweep>.png.
Finished runs are not retrained: rerunning only re-evaluates them, so an interrupted sweep resumes where it stopped.
"""

from common import app, report, results, sweep
from common.nn import counting
from papers.stand_alone_attention import train

SWEEP_FILE = "configs/sweeps/sasa_reproduce.py"
PLOT = "{sweep}.png"
CURVES = "{sweep}_curves.png"
BLOCK = "{sweep}"
FACTORS = {
    "model.kernel_size": "spatial extent k",
    "model.positional": "positional encoding",
    "model.attention_stages": "attention placement",
}
# What tells one cell of a one-factor sweep from another: the factors and the spatial layer (the conv baseline).
CELL_KEYS = ("model.spatial_layer", *FACTORS)
PAPER_BASELINE = "Table 1, ImageNet top-1: conv-stem attention ResNet-50 77.4 (18.0M params) vs baseline 76.9 (25.6M)"


# (factor, leader, other, the claim, the paper's numbers: Table/ablations of the paper, ImageNet top-1)
COMPARISONS = [
    (
        "model.positional",
        "relative",
        "none",
        "Relative positional encoding beats none",
        "validation top-1: relative 80.2, absolute 78.2, none 77.6",
    ),
    (
        "model.kernel_size",
        7,
        3,
        "A larger spatial extent (k = 7) beats k = 3",
        "conv-stem ResNet-50: k = 3 76.4, 5 77.2, 7 77.4, 9 77.7, 11 77.6",
    ),
    (
        "model.attention_stages",
        "late",
        "early",
        "Attention in the later stages beats attention in the early ones",
        "conv groups 1-2 + attention 3-4: 80.7 validation top-1, the best placement",
    ),
]


def is_grid(pairs: list[tuple[dict, dict]]) -> bool:
    """Whether every run sets every factor (the full grid, reported pooled per factor), rather than one factor at
    a time around the base config (reported per cell)."""
    return all(key in point for point, _ in pairs for key in FACTORS)


def cell(point: dict, base) -> tuple:
    """The run's values of CELL_KEYS: the point's override, else the base config's."""
    return tuple(point.get(key, base.model[key.split(".", 1)[1]]) for key in CELL_KEYS)


def cell_label(values: tuple) -> str:
    spatial, kernel_size, positional, stages = values
    return "3x3 conv (baseline)" if spatial == "conv3x3" else f"attention {stages}, k = {kernel_size}, {positional}"


def accuracies_by_cell(pairs: list[tuple[dict, dict]], base) -> dict[tuple, list[float]]:
    """cell (CELL_KEYS values) -> test accuracies of its runs (one per seed), in sweep order."""
    cells: dict[tuple, list[float]] = {}
    for point, metrics in pairs:
        cells.setdefault(cell(point, base), []).append(metrics["eval/accuracy"])
    return cells


def _cell_claim(reproduction, key, leader, other, claim, paper, figure) -> results.Claim:
    """The base config's cell with `key` = `leader` against the cell that differs from it in `key` only (= `other`),
    on mean test accuracy (results.compare_groups), gated on both cells' learning curves reaching a plateau."""
    base = reproduction.finished.base
    cells = accuracies_by_cell(reproduction.finished.results, base)
    index = CELL_KEYS.index(key)
    base_cell = cell({}, base)
    ends = [base_cell[:index] + (value,) + base_cell[index + 1 :] for value in (leader, other)]
    if not all(end in cells for end in ends):
        return results.Claim(
            claim, paper, f"no runs of {cell_label(ends[0])} and {cell_label(ends[1])}", "not tested", "-"
        )
    plateau = results.all_plateau(
        [
            results.runs_plateau(
                results.workdirs_where(reproduction, lambda point, _, end=end: cell(point, base) == end),
                results.plateau_metric(base),
            )
            for end in ends
        ]
    )
    found = results.compare_groups(cells[ends[0]], cells[ends[1]], ("leader", "other"))
    verdict, why = results.gate_on_plateau(*results.lead_verdict(found["word"], str(leader)), *plateau)
    measured = (
        f"mean test accuracy {sweep.mean_and_spread_percent(cells[ends[0]])}% ({cell_label(ends[0])}) vs "
        f"{sweep.mean_and_spread_percent(cells[ends[1]])}% ({cell_label(ends[1])}), {100 * found['gap']:+.2f} "
        f"points, larger seed sd {100 * found['spread']:.2f}"
    )
    return results.Claim(claim, paper, measured, verdict, why, figure, plateau[0])


def claims(reproduction: sweep.Reproduction) -> list[results.Claim]:
    """Each ablation of COMPARISONS, and attention against the conv baseline where the sweep has it. A full grid:
    from the factor tables' pooled numbers, gated on the mean training-loss curve of every run reaching a plateau.
    One factor at a time: the base cell against the cell that differs in that factor (_cell_claim)."""
    pairs = reproduction.finished.results
    plot, curves = results.figure_names(reproduction, PLOT, CURVES)
    if is_grid(pairs):
        plateau = results.runs_plateau(results.workdirs_where(reproduction, lambda *_: True), "train/loss")
        return [
            results.factor_claim(pairs, key, leader, other, claim, paper, plateau, plot, pooled=True)
            for key, leader, other, claim, paper in COMPARISONS
        ]
    figure = curves or plot
    outcomes = [_cell_claim(reproduction, *comparison, figure) for comparison in COMPARISONS]
    claim = "Attention in place of the 3x3 convs beats the conv baseline, with fewer parameters"
    outcomes.append(
        _cell_claim(reproduction, "model.spatial_layer", "attention", "conv3x3", claim, PAPER_BASELINE, figure)
    )
    return outcomes


def _setting(base) -> str:
    stem = f", {base.model.stem} stem" if base.model.stem else ""
    return (
        f"{base.model.name} (stages {tuple(base.model.stage_sizes)}, width {base.model.width}, "
        f"{base.model.num_heads} heads{stem}) on {base.dataset.name}, {base.train.num_steps} steps of batch "
        f"{base.dataset.batch_size}"
    )


def render_grid(reproduction: sweep.Reproduction, setting: str) -> str:
    """The full grid: one table per factor (pooled), a table of every cell, the factor plot."""
    finished = reproduction.finished
    plot, _ = results.figure_names(reproduction, PLOT, CURVES)
    sweep.render_factor_plot(
        finished.results,
        FACTORS,
        reproduction.plot_path(plot),
        f"{setting}\neach dot a run, bar = mean",
        "Fashion-MNIST test accuracy (%)",
    )
    sections = [
        f"**{FACTORS[key]}** (pooled over the other factors and the seeds)\n\n"
        + sweep.render_factor_table(finished.results, key, FACTORS)
        for key in FACTORS
        if key in finished.definition.axes
    ]
    return (
        "\n\n".join(sections)
        + f"\n\n**every grid cell**\n\n{sweep.render_grid_table(finished.results, FACTORS)}\n\n"
        + f"![ablation accuracies]({plot})"
    )


def render_cells(reproduction: sweep.Reproduction, setting: str) -> str:
    """One factor at a time: a table of every cell, the verdicts, each run's accuracy per cell and the curves."""
    finished = reproduction.finished
    base, pairs = finished.base, finished.results
    cells = accuracies_by_cell(pairs, base)
    params = {}
    for point, _ in pairs:
        network, _ = train.build_for_dry_run(sweep.apply_overrides(base, point))
        params[cell(point, base)] = counting.count_params(network)
    base_cell = cell({}, base)
    rows = [
        [
            cell_label(values) + (" (base)" if values == base_cell else ""),
            f"{params[values]:,}",
            sweep.mean_and_spread_percent(accuracies),
            " / ".join(f"{100 * v:.2f}" for v in accuracies),
            len(accuracies),
        ]
        for values, accuracies in cells.items()
    ]
    table = report.markdown_table(["cell", "params", "mean test acc. (%) ± sd", "per seed (%)", "runs"], rows)
    plot, curves = results.figure_names(reproduction, PLOT, CURVES)
    by_label = [({"cell": cell_label(cell(point, base))}, metrics) for point, metrics in pairs]
    sweep.render_factor_plot(
        by_label,
        {"cell": "cell"},
        reproduction.plot_path(plot),
        f"{setting}\neach dot a seed, bar = mean",
        "Fashion-MNIST test accuracy (%)",
    )
    figures = f"![accuracy per cell]({plot})"
    if curves:
        results.plot_group_curves(
            reproduction, lambda point: cell_label(cell(point, base)), reproduction.plot_path(curves), setting
        )
        figures += f"\n\n![test accuracy along training, mean over seeds]({curves})"
    verdicts = "\n".join(f"- {c.claim}: **{c.verdict}** ({c.why}). {c.measured}." for c in claims(reproduction))
    return f"{table}\n\n{verdicts}\n\n{figures}"


def render(reproduction: sweep.Reproduction) -> str:
    setting = _setting(reproduction.finished.base)
    grid = is_grid(reproduction.finished.results)
    body = render_grid(reproduction, setting) if grid else render_cells(reproduction, setting)
    return f"{body}\n\n" + reproduction.provenance(setting)


if __name__ == "__main__":
    sweep.define_reproduce_flags(__file__, SWEEP_FILE)
    app.run(sweep.reproduce_main(__file__, BLOCK, train.train_and_evaluate, render, claims))
