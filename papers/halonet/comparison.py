"""The paper's comparison at CPU scale: HaloNet vs SASA vs a conv ResNet of the same layout, over seeds.

  python -m papers.halonet.comparison --workdir workdirs/halonet/comparison --readme papers/halonet/README.md

Trains configs/sweeps/halonet_comparison.py and writes the README's `small_scale` block: test accuracy per spatial
layer with each network's parameter and FLOP counts, a plot, and the command/machine/time line. Finished runs are
not retrained, so an interrupted comparison resumes where it stopped.
"""

import argparse
import os
import sys

from common import app, report, sweep
from common.nn import counting
from papers.halonet import train

SWEEP_FILE = "configs/sweeps/halonet_comparison.py"
PLOT_PATH = "papers/halonet/comparison.png"
LABELS = {"model.spatial_layer": "spatial layer"}


def model_sizes(finished: sweep.FinishedSweep) -> tuple[dict, dict]:
    """spatial layer -> parameter count and -> forward FLOPs of one 28x28 image (strings for the table)."""
    params, flops = {}, {}
    for layer in finished.definition.axes["model.spatial_layer"]:
        config = sweep.apply_overrides(finished.base, {"model.spatial_layer": layer})
        model, input_shape = train.build_for_dry_run(config)
        params[layer] = f"{counting.count_params(model):,}"
        flops[layer] = f"{counting.count_model_flops(model, input_shape) / 1e6:.1f} M"
    return params, flops


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="workdirs/halonet/comparison")
    parser.add_argument("--readme", default="papers/halonet/README.md")
    parser.add_argument("--sweep", default=SWEEP_FILE)
    parser.add_argument("--plot", default=PLOT_PATH)
    args = parser.parse_args(argv)
    app.prepare_environment()
    finished = sweep.run_sweep_file(args.sweep, train.train_and_evaluate, args.workdir)
    base = finished.base
    setting = (
        f"{base.model.name} (width {base.model.width}, b = {base.model.block_size or 4}, h = "
        f"{base.model.halo_size or 2}) on {base.dataset.name}, {base.train.num_steps} steps of batch "
        f"{base.dataset.batch_size}"
    )
    sweep.render_factor_plot(
        finished.results, LABELS, args.plot, f"{setting}\neach dot a run, bar = mean", "Fashion-MNIST test accuracy (%)"
    )
    params, flops = model_sizes(finished)
    table = sweep.render_factor_table(
        finished.results, "model.spatial_layer", LABELS, parameters=params, **{"FLOPs / image": flops}
    )
    command = f"`python -m papers.halonet.comparison --workdir {args.workdir} --readme {args.readme}`"
    if args.sweep != SWEEP_FILE:
        command = command[:-1] + f" --sweep {args.sweep}`"
    plot = os.path.relpath(args.plot, os.path.dirname(os.path.abspath(args.readme)))
    block = f"{table}\n\n![accuracy per spatial layer]({plot})\n\n" + sweep.provenance(
        command, args.sweep, args.workdir, finished.results, setting, finished.minutes
    )
    report.replace_block(args.readme, "small_scale", block)
    print(block)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
