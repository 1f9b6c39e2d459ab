"""The paper's comparison at CPU scale: HaloNet vs SASA vs a conv ResNet of the same layout, over seeds.

  python -m papers.halonet.reproduce [--sweep configs/sweeps/halonet_comparison.py] [--workdir DIR] [--readme FILE] \
      [--address auto|HOST:PORT] [--max-concurrent N]   # on Ray, each run a main.py process (docs/sweeps.md)

Trains the sweep and writes the README's `small_scale` block: test accuracy per spatial layer with each network's
parameter and FLOP counts, a plot (comparison.png beside the README), and the command/machine/time line. Finished
runs are not retrained, so an interrupted comparison resumes where it stopped.
"""

from common import app, sweep
from common.nn import counting
from papers.halonet import model, train

SWEEP_FILE = "configs/sweeps/halonet_comparison.py"
PLOT = "comparison.png"
BLOCK = "small_scale"
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


def render(reproduction: sweep.Reproduction) -> str:
    finished = reproduction.finished
    base, arch = finished.base, model.architecture(finished.base.model)
    setting = (
        f"{base.model.name} (width {arch['width']}, b = {arch['block_size']}, h = {arch['halo_size']}) on "
        f"{base.dataset.name}, {base.train.num_steps} steps of batch {base.dataset.batch_size}"
    )
    sweep.render_factor_plot(
        finished.results,
        LABELS,
        reproduction.plot_path(PLOT),
        f"{setting}\neach dot a run, bar = mean",
        "Fashion-MNIST test accuracy (%)",
    )
    params, flops = model_sizes(finished)
    table = sweep.render_factor_table(
        finished.results, "model.spatial_layer", LABELS, parameters=params, **{"FLOPs / image": flops}
    )
    return f"{table}\n\n![accuracy per spatial layer]({PLOT})\n\n" + reproduction.provenance(setting)


if __name__ == "__main__":
    sweep.define_reproduce_flags(__file__, SWEEP_FILE)
    app.run(sweep.reproduce_main(__file__, BLOCK, train.train_and_evaluate, render))
