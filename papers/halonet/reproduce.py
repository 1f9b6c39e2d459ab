"""The paper's comparison at CPU scale: HaloNet vs SASA vs a conv ResNet of the same layout, over seeds.

  python -m papers.halonet.reproduce [--sweep configs/sweeps/halonet_comparison.py] [--workdir DIR] [--readme FILE] \
      [--address auto|HOST:PORT] [--max-concurrent N]   # on Ray, each run a main.py process (docs/sweeps.md)

Trains the sweep and writes the README's `small_scale` block: test accuracy per spatial layer with each network's
parameter and FLOP counts, a plot (comparison.png beside the README), and the command/machine/time line. Finished
runs are not retrained, so an interrupted comparison resumes where it stopped.
"""

from common import app, results, sweep
from common.nn import counting
from papers.halonet import model, train

SWEEP_FILE = "configs/sweeps/halonet_comparison.py"
PLOT = "comparison.png"
BLOCK = "small_scale"
LABELS = {"model.spatial_layer": "spatial layer"}
LAYER = "model.spatial_layer"
PAPER_ACCURACY = "ImageNet top-1: HaloNet-50 78.6 vs ResNet-50 77.6 (150 epochs, 256 px)"
PAPER_PARAMS = "HaloNet-50 18.0M parameters vs 25.5M for ResNet-50"


def count_sizes(finished: sweep.FinishedSweep) -> dict[str, tuple[int, float]]:
    """spatial layer -> (parameter count, forward FLOPs of one 28x28 image)."""
    sizes = {}
    for layer in finished.definition.axes[LAYER]:
        config = sweep.apply_overrides(finished.base, {LAYER: layer})
        network, input_shape = train.build_for_dry_run(config)
        sizes[layer] = (counting.count_params(network), counting.count_model_flops(network, input_shape))
    return sizes


def model_sizes(finished: sweep.FinishedSweep) -> tuple[dict, dict]:
    """spatial layer -> parameter count and -> forward FLOPs of one 28x28 image (strings for the table)."""
    sizes = count_sizes(finished)
    params = {layer: f"{count:,}" for layer, (count, _) in sizes.items()}
    flops = {layer: f"{count / 1e6:.1f} M" for layer, (_, count) in sizes.items()}
    return params, flops


def claims(reproduction: sweep.Reproduction) -> list[results.Claim]:
    """Accuracy (halo vs conv3x3 runs, the factor table's numbers, gated on the training-loss curves of both
    reaching a plateau) and parameter count (an exact count, no training)."""
    finished = reproduction.finished
    plateau = results.all_plateau(
        [
            results.runs_plateau(results.workdirs_where(reproduction, lambda p, _, v=v: p[LAYER] == v), "train/loss")
            for v in ("halo", "conv3x3")
        ]
    )
    accuracy_claim = "HaloNet is more accurate than a conv ResNet of the same layout"
    outcomes = [
        results.factor_claim(finished.results, LAYER, "halo", "conv3x3", accuracy_claim, PAPER_ACCURACY, plateau, PLOT)
    ]
    sizes = count_sizes(finished)
    if "halo" in sizes and "conv3x3" in sizes:
        (halo_params, halo_flops), (conv_params, conv_flops) = sizes["halo"], sizes["conv3x3"]
        fewer = halo_params < conv_params
        outcomes.append(
            results.Claim(
                "Halo attention layers need fewer parameters than the convolutions they replace",
                PAPER_PARAMS,
                f"{halo_params:,} (halo) vs {conv_params:,} (conv3x3) parameters "
                f"({halo_params / conv_params - 1:+.0%}); "
                f"forward FLOPs per 28x28 image {halo_flops / 1e6:.1f} M vs {conv_flops / 1e6:.1f} M",
                "reproduced" if fewer else "not reproduced at this scale",
                "exact count of the networks this sweep trains"
                + ("" if fewer else ": the halo network is not the smaller one"),
            )
        )
    return outcomes


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
    app.run(sweep.reproduce_main(__file__, BLOCK, train.train_and_evaluate, render, claims))
