"""The paper's comparison at CPU scale: HaloNet vs SASA vs a conv ResNet of the same layout, over seeds.

  python -m papers.halonet.reproduce [--sweep configs/sweeps/halonet_reproduce.py] [--workdir DIR] [--readme FILE] \
      [--address auto|HOST:PORT] [--max-concurrent N]   # on Ray, each run a main.py process (docs/sweeps.md)

Sweeps: halonet_reproduce (the default: trained to a plateau, test accuracy along the way) and halonet_comparison
(300 steps of batch 64, the fast scale). Trains the sweep and writes the README block named after the sweep file:
test accuracy per spatial layer with each network's parameter and FLOP counts, the verdict on each claim,
<sweep>.png (each run's accuracy per layer), <sweep>_curves.png where the runs evaluated during training (the
learning curves the plateau is read from), and the command/machine/time line. Finished runs are not retrained, so
an interrupted comparison resumes where it stopped.
"""

from common import app, results, sweep
from common.nn import counting
from papers.halonet import model, train

SWEEP_FILE = "configs/sweeps/halonet_reproduce.py"
PLOT = "{sweep}.png"
CURVES = "{sweep}_curves.png"
BLOCK = "{sweep}"
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
    """Accuracy (halo vs conv3x3 runs, the factor table's numbers, gated on the learning curves of both reaching
    a plateau: test accuracy where the runs evaluated during training, else the training loss) and parameter
    count (an exact count, no training)."""
    finished = reproduction.finished
    metric = results.plateau_metric(finished.base)
    plateau = results.all_plateau(
        [
            results.runs_plateau(results.workdirs_where(reproduction, lambda p, _, v=v: p[LAYER] == v), metric)
            for v in ("halo", "conv3x3")
        ]
    )
    plot, curves = results.figure_names(reproduction, PLOT, CURVES)
    accuracy_claim = "HaloNet is more accurate than a conv ResNet of the same layout"
    outcomes = [
        results.factor_claim(
            finished.results, LAYER, "halo", "conv3x3", accuracy_claim, PAPER_ACCURACY, plateau, curves or plot
        )
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
        f"{base.model.name} (width {arch['width']}, b = {arch['block_size']}, h = {arch['halo_size']}, "
        f"{arch['stem']} stem) on {base.dataset.name}, {base.train.num_steps} steps of batch {base.dataset.batch_size}"
    )
    plot, curves = results.figure_names(reproduction, PLOT, CURVES)
    sweep.render_factor_plot(
        finished.results,
        LABELS,
        reproduction.plot_path(plot),
        f"{setting}\neach dot a run, bar = mean",
        "Fashion-MNIST test accuracy (%)",
    )
    params, flops = model_sizes(finished)
    table = sweep.render_factor_table(
        finished.results, "model.spatial_layer", LABELS, parameters=params, **{"FLOPs / image": flops}
    )
    figures = f"![accuracy per spatial layer]({plot})"
    if curves:
        results.plot_group_curves(reproduction, lambda point: point[LAYER], reproduction.plot_path(curves), setting)
        figures += f"\n\n![test accuracy along training, mean over seeds]({curves})"
    verdicts = "\n".join(f"- {c.claim}: **{c.verdict}** ({c.why}). {c.measured}." for c in claims(reproduction))
    return f"{table}\n\n{verdicts}\n\n{figures}\n\n" + reproduction.provenance(setting)


if __name__ == "__main__":
    sweep.define_reproduce_flags(__file__, SWEEP_FILE)
    app.run(sweep.reproduce_main(__file__, BLOCK, train.train_and_evaluate, render, claims))
