"""Low-rank local connectivity end to end through its main.py, its network's sizes, and the rank sweep's report."""

import jax.numpy as jnp
import pytest
from flax import nnx

from common import sweep
from common.nn import counting
from common.registry import UnknownNameError
from papers.low_rank_local import config as lrlc_config
from papers.low_rank_local import model as lrlc_model
from papers.low_rank_local import reproduce, train
from tests.helpers import assert_smoke_run_learns


@pytest.mark.slow
def test_smoke_run_learns_and_writes_outputs(tmp_path):
    assert_smoke_run_learns("low_rank_local", tmp_path)
    assert (tmp_path / "checkpoints" / "30").exists()


def _params(layer: str, rank: int = 4) -> int:
    config = lrlc_config.get_config("default")
    config.model.update(layer=layer, rank=rank)
    return counting.count_params(train.build_for_dry_run(config)[0])


# The default network on 28x28x1: three 3x3/64 VALID layers (outputs 26, 24, 22), BN (scale, bias), dense head.
SIDES, CHANNELS = (26, 24, 22), ((1, 64), (64, 64), (64, 64))
NORM_AND_HEAD = 3 * 2 * 64 + 64 * 10 + 10


def test_network_sizes_follow_from_the_layer_definitions():
    conv = sum(9 * cin * cout for cin, cout in CHANNELS)
    dense = sum(side * side * (9 * cin * cout + cout) for side, (cin, cout) in zip(SIDES, CHANNELS, strict=True))
    for rank in (1, 4):
        lrlc = sum(
            9 * cin * rank * cout + 2 * side * rank + 2 * side
            for side, (cin, cout) in zip(SIDES, CHANNELS, strict=True)
        )
        assert _params("lrlc", rank) == lrlc + NORM_AND_HEAD
    assert _params("conv") == conv + NORM_AND_HEAD
    assert _params("lc") == dense + NORM_AND_HEAD == 39_577_354  # the paper's ~40M-weight LC network


def test_wide_conv_matches_the_spatial_parameters_of_its_target():
    config = lrlc_config.get_config("default")
    for target, rank in (("lrlc", 4), ("lrlc", 16), ("lc", 4)):
        config.model.update(layer=target, rank=rank)
        reference = train.build_for_dry_run(config)[0].spatial_params()
        config.model.update(layer="wide_conv", wide_conv_target=target)
        wide = train.build_for_dry_run(config)[0]
        assert all(isinstance(layer, nnx.Conv) for layer in wide.spatial)
        assert abs(wide.spatial_params() / reference - 1) < 0.02, (target, rank, wide.spatial_params(), reference)


@pytest.mark.parametrize("layer", sorted(lrlc_model.LAYERS))
def test_every_layer_type_runs_on_smoke_shapes(layer):
    config = lrlc_config.get_config("smoke")
    config.model.layer = layer
    network = lrlc_model.build_model(config, (8, 8, 1), 10, nnx.Rngs(0))
    assert network(jnp.ones((2, 8, 8, 1))).shape == (2, 10)


def test_bad_names_fail_with_the_valid_choices():
    config = lrlc_config.get_config("smoke")
    config.model.layer = "lrcl"
    with pytest.raises(
        UnknownNameError, match="unknown spatial layer 'lrcl'; valid choices: conv, lc, lrlc, wide_conv"
    ):
        lrlc_model.build_model(config, (8, 8, 1), 10, nnx.Rngs(0))
    config.model.update(layer="wide_conv", wide_conv_target="dense")
    with pytest.raises(UnknownNameError, match="unknown wide conv target 'dense'; valid choices: lc, lrlc"):
        lrlc_model.build_model(config, (8, 8, 1), 10, nnx.Rngs(0))
    with pytest.raises(UnknownNameError, match="unknown low_rank_local config variant 'celeba'"):
        lrlc_config.get_config("celeba")


@pytest.mark.parametrize("variant", ["mnist", "cifar10", "celeb_a"])
def test_tfds_variants_build_for_their_datasets(variant):
    network, input_shape = train.build_for_dry_run(lrlc_config.get_config(variant))
    assert input_shape == {"mnist": (28, 28, 1), "cifar10": (32, 32, 3), "celeb_a": (32, 32, 3)}[variant]
    assert network.spatial[0].output_size == (input_shape[0] - 2,) * 2


def test_rank_sweep_covers_every_layer_baselines_first_and_every_point_builds():
    definitions = sweep.load_sweeps(reproduce.SWEEP_FILE)
    points = [point for definition in definitions for point in definition.points()]
    assert [definition.axes["model.layer"] for definition in definitions] == [["conv", "lc", "wide_conv"], ["lrlc"]]
    labels = {reproduce.row_label(point) for point in points}
    assert labels == {"conv", "LC (dense)", "wide conv"} | {f"LRLC K={k}" for k in (1, 2, 4, 8, 16)}
    assert len({point["seed"] for point in points}) >= 2
    base = sweep.load_config(definitions[0].config)
    for point in points:
        if point["seed"] == 0:
            network, _ = train.build_for_dry_run(sweep.apply_overrides(base, point))
            assert len(network.spatial) == 3


def _fake_results(lrlc_accuracy: float):
    results = [
        ({"seed": s, "model.layer": name}, {"eval/accuracy": acc + 0.01 * s})
        for name, acc in (("conv", 0.80), ("lc", 0.82), ("wide_conv", 0.81))
        for s in (0, 1)
    ]
    results += [
        ({"seed": s, "model.layer": "lrlc", "model.rank": k}, {"eval/accuracy": lrlc_accuracy - 0.001 * k + 0.01 * s})
        for k in (1, 4)
        for s in (0, 1)
    ]
    return results


def test_rank_sweep_report_table_and_plot(tmp_path):
    results = _fake_results(0.85)
    table = reproduce.render_table(results, {"conv": 1234})
    assert "| conv | 1,234 | 80.50 ± 0.71 | 80.00 / 81.00 | 2 |" in table
    assert "| LRLC K=4 | n/a | 85.10 ± 0.71 | 84.60 / 85.60 | 2 |" in table
    reproduce.render_plot(results, str(tmp_path / "plot.png"), "title")
    assert (tmp_path / "plot.png").stat().st_size > 0
