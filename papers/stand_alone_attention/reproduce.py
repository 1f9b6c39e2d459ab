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

from common import app, sweep
from papers.stand_alone_attention import train

SWEEP_FILE = "configs/sweeps/sasa_ablation.py"
PLOT = "ablation.png"
BLOCK = "small_scale"
FACTORS = {
    "model.kernel_size": "spatial extent k",
    "model.positional": "positional encoding",
    "model.attention_stages": "attention placement",
}


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
    app.run(sweep.reproduce_main(__file__, BLOCK, train.train_and_evaluate, render))
