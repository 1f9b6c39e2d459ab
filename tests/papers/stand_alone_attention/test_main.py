"""Stand-alone self-attention end to end through its main.py, its model sizes against the paper's Table 1, and its
reproduce report on fabricated runs."""

import re

import jax.numpy as jnp
import pytest
from flax import nnx

from common import sweep
from common.nn import counting, resnet
from common.nn.local_attention import LocalSelfAttention
from papers.stand_alone_attention import config as sasa_config
from papers.stand_alone_attention import model as sasa_model
from papers.stand_alone_attention import reproduce, train
from tests.helpers import assert_smoke_run_learns, fabricate_reproduction, run_main

CONFIG = "--config=papers/stand_alone_attention/config.py"

# Table 1 of the paper: (params M, FLOPs B) at 224x224, a multiply-add counted as 2 (what `make sizes` reports).
TABLE_1 = sasa_config.PAPER_SIZES


@pytest.mark.long
@pytest.mark.slow
def test_smoke_run_learns(tmp_path):
    assert_smoke_run_learns("stand_alone_attention", tmp_path)


@pytest.mark.parametrize("variant", sorted(TABLE_1))
def test_model_size_matches_table_1(variant):
    """The counts `--dry_run` prints, computed in-process on the abstract model (fast)."""
    paper_params, paper_flops = TABLE_1[variant]
    model, input_shape = train.build_for_dry_run(sasa_config.get_config(variant))
    params = counting.count_params(model)
    flops = counting.count_model_flops(model, input_shape)
    assert abs(params / 1e6 - paper_params) / paper_params < 0.01, params
    assert abs(flops / 1e9 - paper_flops) / paper_flops < 0.10, flops


@pytest.mark.long  # a subprocess; HaloNet's dry run keeps the same path in make test
@pytest.mark.slow
def test_dry_run_prints_params_and_flops():
    result = run_main("stand_alone_attention", f"{CONFIG}:r50_full", "--dry_run")
    params = int(re.search(r"^params: (\d+)$", result.stdout, re.M).group(1))
    flops = int(re.search(r"^flops: (\d+)$", result.stdout, re.M).group(1))
    assert abs(params / 18.0e6 - 1) < 0.01
    assert abs(flops / 7.2e9 - 1) < 0.10


@pytest.mark.long  # a subprocess; tests/test_bad_input.py runs the same path for every paper
def test_bad_spatial_layer_fails_with_the_valid_choices(tmp_path):
    result = run_main(
        "stand_alone_attention", f"{CONFIG}:smoke", "--config.model.spatial_layer=atention", "--dry_run", check=False
    )
    assert result.returncode != 0
    assert "unknown spatial layer 'atention'; valid choices: attention, conv3x3" in result.stderr


def _spatial_layers(model):
    """The spatial layer of every block, in order (the fashion nets are bottleneck ResNets)."""
    return [block.spatial for block in model.blocks]


@pytest.mark.parametrize(
    ("stages", "expected"),
    [("all", (0, 1, 2)), ("early", (0,)), ("late", (2,)), ("1,2", (1, 2)), ("-1", (2,)), ("", ())],
)
def test_attention_stages_place_attention_in_the_chosen_stages_only(stages, expected):
    config = sasa_config.get_config("fashion_attention")
    config.model.attention_stages = stages
    model, _ = train.build_for_dry_run(config)
    kinds = [isinstance(layer, LocalSelfAttention) for layer in _spatial_layers(model)]
    assert kinds == [stage in expected for stage in range(3)]
    assert all(
        isinstance(layer, nnx.Conv) for layer in _spatial_layers(model) if not isinstance(layer, LocalSelfAttention)
    )


def test_late_attention_on_resnet50_is_the_papers_conv_1_2_attention_3_4():
    config = sasa_config.get_config("r50_conv_stem")
    config.model.attention_stages = "late"
    model, _ = train.build_for_dry_run(config)
    kinds = [isinstance(layer, LocalSelfAttention) for layer in _spatial_layers(model)]
    assert kinds == [False] * 7 + [True] * 9  # stages of 3, 4, 6, 3 blocks


def test_bad_attention_stages_fail_clearly():
    assert resnet.stage_indices(None, 4) == (0, 1, 2, 3)
    with pytest.raises(ValueError, match="out of range"):
        resnet.stage_indices((0, 4), 4)
    with pytest.raises(ValueError, match="expected one of"):
        resnet.stage_indices("middle", 4)


@pytest.mark.parametrize("variant", ["fashion_attention_absolute", "fashion_attention_no_pos", "fashion_ablation"])
def test_fashion_variants_build_and_run(variant):
    config = sasa_config.get_config(variant)
    model = sasa_model.build_model(config, (28, 28, 1), 10, nnx.Rngs(0))
    assert model(jnp.ones((2, 28, 28, 1))).shape == (2, 10)
    positional = config.model.positional
    assert all(layer.positional == positional for layer in _spatial_layers(model))


def test_ablation_sweep_covers_the_grid_and_every_point_builds():
    definition = sweep.load_sweep("configs/sweeps/sasa_ablation.py")
    points = definition.points()
    assert len(points) == 36
    base = sweep.load_config(definition.config)
    for point in points:
        if point["seed"] == 0:
            model, _ = train.build_for_dry_run(sweep.apply_overrides(base, point))
            assert any(isinstance(layer, LocalSelfAttention) for layer in _spatial_layers(model))


def test_ablation_report_tables_and_plot(tmp_path):
    results = [
        ({"model.kernel_size": k, "model.positional": p, "seed": s}, {"eval/accuracy": 0.5 + 0.01 * k + 0.001 * s})
        for k in (3, 7)
        for p in ("none", "relative")
        for s in (0, 1)
    ]
    table = sweep.render_factor_table(results, "model.kernel_size", reproduce.FACTORS)
    assert "| 3 | 53.05 ± 0.06 |" in table and "| 7 | 57.05 ± 0.06 |" in table
    grid = sweep.render_grid_table(results, reproduce.FACTORS)
    assert grid.count("\n") == 2 + 4 - 1  # header, rule and one row per (k, positional) cell
    sweep.render_factor_plot(results, reproduce.FACTORS, str(tmp_path / "plot.png"), "title", "acc")
    assert (tmp_path / "plot.png").stat().st_size > 0


def fabricated_reproduction(tmp_path, accuracy_of, still_rising=False):
    """The reproduce sweep's runs, each ending at `accuracy_of(cell label, seed)`."""
    base = sweep.load_config(sweep.load_sweep(reproduce.SWEEP_FILE).config)

    def final_accuracy(point):
        return accuracy_of(reproduce.cell_label(reproduce.cell(point, base)), point["seed"])

    return fabricate_reproduction(tmp_path, reproduce.SWEEP_FILE, final_accuracy, still_rising)


def base_cell_leads(label, seed):
    return (0.85 if label.endswith("relative") and "late" in label and "k = 7" in label else 0.80) + 0.002 * seed


def test_reproduce_sweep_changes_one_factor_of_the_base_per_cell():
    base = sweep.load_config(sweep.load_sweep(reproduce.SWEEP_FILE).config)
    points = [point for definition in sweep.load_sweeps(reproduce.SWEEP_FILE) for point in definition.points()]
    base_cell = reproduce.cell({}, base)
    cells = {reproduce.cell(point, base) for point in points}
    assert base_cell in cells and len(cells) == 6
    assert all(sum(a != b for a, b in zip(c, base_cell, strict=True)) <= 1 for c in cells)
    assert {point["seed"] for point in points} == {0, 1, 2}
    assert not reproduce.is_grid([(point, {}) for point in points])
    assert reproduce.is_grid(
        [({"model.kernel_size": 3, "model.positional": "none", "model.attention_stages": "late"}, {})]
    )


@pytest.mark.parametrize(("still_rising", "expected"), [(False, "reproduced"), (True, "not tested")])
def test_reproduce_claims_compare_the_base_cell_with_each_one_factor_variant(tmp_path, still_rising, expected):
    claims = reproduce.claims(fabricated_reproduction(tmp_path, base_cell_leads, still_rising))
    assert len(claims) == 4 and {claim.verdict for claim in claims} == {expected}
    assert all(claim.plateau is not still_rising for claim in claims)
    assert "(attention late, k = 7, relative) vs" in claims[1].measured and "k = 3" in claims[1].measured
    assert claims[3].measured.endswith("larger seed sd 0.20") and "3x3 conv (baseline)" in claims[3].measured
    assert claims[0].figure == "sasa_reproduce_curves.png"


def test_reproduce_claims_say_when_the_base_cell_is_behind(tmp_path):
    claims = reproduce.claims(fabricated_reproduction(tmp_path, lambda label, seed: 0.9 - base_cell_leads(label, 0)))
    assert {claim.verdict for claim in claims} == {"not reproduced at this scale"}
    assert all("behind by more than the seed spread" in claim.why for claim in claims)


def test_reproduce_render_writes_the_cell_table_verdicts_and_both_figures(tmp_path):
    text = reproduce.render(fabricated_reproduction(tmp_path, base_cell_leads))
    assert "| attention late, k = 7, relative (base) | 27,058 | 85.20 ± 0.20 | 85.00 / 85.20 / 85.40 | 3 |" in text
    assert "| 3x3 conv (baseline) | 33,090 | 80.20 ± 0.20 |" in text
    assert text.count("**reproduced**") == 4
    for name in ("sasa_reproduce.png", "sasa_reproduce_curves.png"):
        assert f"]({name})" in text and (tmp_path / name).stat().st_size > 0
