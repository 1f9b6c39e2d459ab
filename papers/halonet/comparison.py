"""The paper's comparison at CPU scale: HaloNet vs SASA vs a conv ResNet of the same layout, over seeds.

  python -m papers.halonet.comparison --workdir workdirs/halonet/comparison --readme papers/halonet/README.md

Trains configs/sweeps/halonet_comparison.py and writes the README's `small_scale` block: test accuracy per spatial
layer with each network's parameter and FLOP counts, a plot, and the command/machine/time line. Finished runs are
not retrained, so an interrupted comparison resumes where it stopped.
"""

import os
import sys

from common import report, sweep
from common.nn import counting
from papers.halonet import model, train

SWEEP_FILE = "configs/sweeps/halonet_comparison.py"
PLOT_PATH = "papers/halonet/comparison.png"
README = "papers/halonet/README.md"
LABELS = {"model.spatial_layer": "spatial layer"}


def model_sizes(finished: sweep.FinishedSweep) -> tuple[dict, dict]:
    """spatial layer -> parameter count and -> forward FLOPs of one 28x28 image (strings for the table)."""
    params, flops = {}, {}
    for layer in finished.definition.axes["model.spatial_layer"]:
        config = sweep.apply_overrides(finished.base, {"model.spatial_layer": layer})
        network, input_shape = train.build_for_dry_run(config)
        params[layer] = f"{counting.count_params(network):,}"
        flops[layer] = f"{counting.count_model_flops(network, input_shape) / 1e6:.1f} M"
    return params, flops


def main(argv=None) -> None:
    args = sweep.report_arguments(
        argv, __doc__, workdir="workdirs/halonet/comparison", readme=README, sweep_file=SWEEP_FILE, plot=PLOT_PATH
    )
    finished = sweep.run_sweep_file(args.sweep, train.train_and_evaluate, args.workdir)
    base, arch = finished.base, model.architecture(finished.base.model)
    setting = (
        f"{base.model.name} (width {arch['width']}, b = {arch['block_size']}, h = {arch['halo_size']}) on "
        f"{base.dataset.name}, {base.train.num_steps} steps of batch {base.dataset.batch_size}"
    )
    sweep.render_factor_plot(
        finished.results, LABELS, args.plot, f"{setting}\neach dot a run, bar = mean", "Fashion-MNIST test accuracy (%)"
    )
    params, flops = model_sizes(finished)
    table = sweep.render_factor_table(
        finished.results, "model.spatial_layer", LABELS, parameters=params, **{"FLOPs / image": flops}
    )
    command = sweep.report_command("papers.halonet.comparison", args, SWEEP_FILE)
    plot = os.path.relpath(args.plot, os.path.dirname(os.path.abspath(args.readme)))
    block = f"{table}\n\n![accuracy per spatial layer]({plot})\n\n" + sweep.provenance(
        command, args.sweep, args.workdir, finished.results, setting, finished.minutes
    )
    report.replace_block(args.readme, "small_scale", block)
    print(block)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
