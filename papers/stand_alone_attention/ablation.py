"""The paper's ablations at CPU scale: trains configs/sweeps/sasa_ablation.py and writes its tables and plot.

  python -m papers.stand_alone_attention.ablation --workdir workdirs/stand_alone_attention/ablation \
      --readme papers/stand_alone_attention/README.md

Spatial extent k, positional encoding (none / absolute / relative) and attention placement (early / late stage),
several seeds each, on offline Fashion-MNIST (see the sweep file for the grid and its run time). The results go
into the README's `small_scale` block: one table per factor (every run of that factor's value, pooled over the
other factors and the seeds), a table of every grid cell, and a plot of the three factors. Finished runs are not
retrained: rerunning only re-evaluates them, so an interrupted ablation resumes where it stopped.
"""

import os
import sys

from common import report, sweep
from papers.stand_alone_attention import train

SWEEP_FILE = "configs/sweeps/sasa_ablation.py"
PLOT_PATH = "papers/stand_alone_attention/ablation.png"
FACTORS = {
    "model.kernel_size": "spatial extent k",
    "model.positional": "positional encoding",
    "model.attention_stages": "attention placement",
}


def main(argv=None) -> None:
    args = sweep.report_arguments(
        argv,
        __doc__,
        workdir="workdirs/stand_alone_attention/ablation",
        readme="papers/stand_alone_attention/README.md",
        sweep_file=SWEEP_FILE,
        plot=PLOT_PATH,
    )
    finished = sweep.run_sweep_file(args.sweep, train.train_and_evaluate, args.workdir)
    definition, base, results = finished.definition, finished.base, finished.results
    setting = (
        f"{base.model.name} (stages {tuple(base.model.stage_sizes)}, width {base.model.width}, "
        f"{base.model.num_heads} heads) on {base.dataset.name}, {base.train.num_steps} steps of batch "
        f"{base.dataset.batch_size}"
    )
    sweep.render_factor_plot(
        results, FACTORS, args.plot, f"{setting}\neach dot a run, bar = mean", "Fashion-MNIST test accuracy (%)"
    )
    sections = [
        f"**{FACTORS[key]}** (pooled over the other factors and the seeds)\n\n"
        + sweep.render_factor_table(results, key, FACTORS)
        for key in FACTORS
        if key in definition.axes
    ]
    command = sweep.report_command("papers.stand_alone_attention.ablation", args, SWEEP_FILE)
    block = (
        "\n\n".join(sections)
        + f"\n\n**every grid cell**\n\n{sweep.render_grid_table(results, FACTORS)}\n\n"
        + f"![ablation accuracies]({os.path.relpath(args.plot, os.path.dirname(os.path.abspath(args.readme)))})\n\n"
        + sweep.provenance(command, args.sweep, args.workdir, results, setting, finished.minutes)
    )
    report.replace_block(args.readme, "small_scale", block)
    print(block)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
