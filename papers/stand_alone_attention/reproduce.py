"""The paper's ablations at CPU scale: trains configs/sweeps/sasa_ablation.py and writes its tables and plot.

  python -m papers.stand_alone_attention.reproduce [--sweep configs/sweeps/sasa_ablation.py] [--workdir DIR] \
      [--readme FILE] \
      [--address auto|HOST:PORT] [--max-concurrent N]   # on Ray, each run a main.py process (docs/sweeps.md)

Spatial extent k, positional encoding (none / absolute / relative) and attention placement (early / late stage),
several seeds each, on offline Fashion-MNIST (see the sweep file for the grid and its run time). The results go
into the README's `small_scale` block: one table per factor (every run of that factor's value, pooled over the
other factors and the seeds), a table of every grid cell, and a plot of the three factors (ablation.png beside
the README). Finished runs are not
retrained: rerunning only re-evaluates them, so an interrupted ablation resumes where it stopped.
"""

from common import app, results, sweep
from papers.stand_alone_attention import train

SWEEP_FILE = "configs/sweeps/sasa_ablation.py"
PLOT = "ablation.png"
BLOCK = "small_scale"
FACTORS = {
    "model.kernel_size": "spatial extent k",
    "model.positional": "positional encoding",
    "model.attention_stages": "attention placement",
}


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


def claims(reproduction: sweep.Reproduction) -> list[results.Claim]:
    """Each ablation of COMPARISONS from the factor tables' pooled numbers, gated on the mean training-loss curve
    of every run reaching a plateau."""
    plateau = results.runs_plateau(results.workdirs_where(reproduction, lambda *_: True), "train/loss")
    return [
        results.factor_claim(
            reproduction.finished.results, key, leader, other, claim, paper, plateau, PLOT, pooled=True
        )
        for key, leader, other, claim, paper in COMPARISONS
    ]


def render(reproduction: sweep.Reproduction) -> str:
    finished = reproduction.finished
    definition, base, results = finished.definition, finished.base, finished.results
    setting = (
        f"{base.model.name} (stages {tuple(base.model.stage_sizes)}, width {base.model.width}, "
        f"{base.model.num_heads} heads) on {base.dataset.name}, {base.train.num_steps} steps of batch "
        f"{base.dataset.batch_size}"
    )
    sweep.render_factor_plot(
        results,
        FACTORS,
        reproduction.plot_path(PLOT),
        f"{setting}\neach dot a run, bar = mean",
        "Fashion-MNIST test accuracy (%)",
    )
    sections = [
        f"**{FACTORS[key]}** (pooled over the other factors and the seeds)\n\n"
        + sweep.render_factor_table(results, key, FACTORS)
        for key in FACTORS
        if key in definition.axes
    ]
    return (
        "\n\n".join(sections)
        + f"\n\n**every grid cell**\n\n{sweep.render_grid_table(results, FACTORS)}\n\n"
        + f"![ablation accuracies]({PLOT})\n\n"
        + reproduction.provenance(setting)
    )


if __name__ == "__main__":
    sweep.define_reproduce_flags(__file__, SWEEP_FILE)
    app.run(sweep.reproduce_main(__file__, BLOCK, train.train_and_evaluate, render, claims))
