"""Model sizes against a paper's table: the counts of the built model, the table, and the claims' verdicts."""

import pytest

from common import sizes
from common.nn import counting
from common.sweep import load_config
from papers.halonet import train


def _row(variant: str, params: int, flops: int, paper_params_m, paper_flops_b=None) -> dict:
    return {"variant": variant, "input_shape": [8, 8, 3], "params": params, "flops": flops,
            "paper_params_m": paper_params_m, "paper_flops_b": paper_flops_b}  # fmt: skip


def test_measure_counts_the_variant_the_config_builds():
    (row,) = sizes.measure("halonet", {"smoke": (0.1, None)})
    model, input_shape = train.build_for_dry_run(load_config("papers/halonet/config.py:smoke"))
    assert row["params"] == counting.count_params(model) > 0
    assert row["flops"] == counting.count_model_flops(model, input_shape) > 0
    assert (row["input_shape"], row["paper_params_m"], row["paper_flops_b"]) == (list(input_shape), 0.1, None)


def test_claims_reproduce_within_tolerance_and_say_which_variant_is_furthest():
    rows = [_row("a", 10_300_000, 4_500_000_000, 10.0, 4.5), _row("b", 20_000_000, 8_000_000_000, 20.0, None),
            _row("c", 5_000_000, 1_000_000_000, None, None)]  # fmt: skip
    params, flops = sizes.claims(rows)
    assert params.verdict == "reproduced" and "2 of 2 variants" in params.why and "a at +3.0%" in params.why
    assert params.paper_numbers == "parameters (M): a 10, b 20"  # c: the paper gives no size
    assert flops.verdict == "reproduced" and flops.measured == "FLOPs (B): a 4.50 (+0.0%)"
    assert params.plateau is None  # an exact check, not a training result


@pytest.mark.parametrize(
    ("measured", "verdict"), [((10.6, 20.0), "partly"), ((10.6, 22.0), "not reproduced at this scale")]
)
def test_claims_off_by_more_than_the_tolerance(measured, verdict):
    rows = [_row("a", int(measured[0] * 1e6), 1, 10.0), _row("b", int(measured[1] * 1e6), 1, 20.0)]
    (params,) = sizes.claims(rows)  # no paper FLOPs: no FLOP claim
    assert params.verdict == verdict


def test_render_leaves_missing_paper_numbers_empty_and_lists_exact_counts():
    text = sizes.render([_row("h0", 5_485_352, 4_615_557_120, 5.5)])
    assert "| h0 | 8x8x3 | 5.49 | 5.5 | -0.3% | 4.62 |  |  |" in text
    assert "Exact counts (params / FLOPs): h0 5485352 / 4615557120." in text


def test_papers_with_sizes_are_the_ones_whose_config_has_a_table():
    assert sizes.papers_with_sizes("papers") == ["halonet", "stand_alone_attention"]
