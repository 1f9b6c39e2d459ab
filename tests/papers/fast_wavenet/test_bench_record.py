"""The generation record's claims, decided from hand-made bench rows (no timing): equal outputs reproduce the
exactness claim, a logit difference above the tolerance or a differing sample does not, and a speed-up that falls
with the receptive field does not reproduce the speed claim."""

import json

import pytest

from common import results
from papers.fast_wavenet import bench


def demo_row(layers: int, cpu_speedup: float, diff: float = 1e-8, same: bool = True) -> dict:
    return {
        "name": f"demo_L{layers}",
        "layers_per_block": layers,
        "receptive_field": 2 ** (layers + 1) - 1,
        "speedup": 0.8 * cpu_speedup,
        "cpu_speedup": cpu_speedup,
        "max_abs_logit_diff": diff,
        "same_samples": same,
        "naive_samples": 16,
    }


def gated_row(diff: float = 6e-7) -> dict:
    return {**demo_row(10, 400.0, diff), "name": "wavenet20_b1"}


def test_equal_outputs_and_a_rising_speedup_reproduce_both_claims():
    rows = [demo_row(2, 5.0), demo_row(4, 20.0), demo_row(6, 80.0), gated_row()]
    exact, speed = bench.claims(rows)
    assert exact.verdict == "reproduced" and exact.plateau is None
    assert exact.measured.startswith("largest max abs logit diff 6.0e-07 (wavenet20_b1) over 4 configurations")
    assert exact.measured.endswith("identical samples in 4 of 4 (on the 64 timed naive steps)")
    assert speed.verdict == "reproduced" and speed.figure is None
    assert "7 (L = 2) 5x (4x), 31 (L = 4) 20x (16x), 127 (L = 6) 80x (64x)" in speed.measured
    assert "x2.00 per added layer per block" in speed.measured  # 4x per step of 2 layers


@pytest.mark.parametrize(
    "rows, problem",
    [
        ([demo_row(2, 5.0), demo_row(4, 13.0, diff=3e-4)], "logits beyond 0.0001 in demo_L4"),
        ([demo_row(2, 5.0, same=False), demo_row(4, 13.0)], "different samples in demo_L2"),
    ],
)
def test_a_logit_diff_above_tolerance_or_a_different_sample_is_not_reproduced(rows, problem):
    exact = bench.exactness_claim(rows)
    assert exact.verdict == "not reproduced at this scale" and exact.why == problem


@pytest.mark.parametrize(
    "cpu_speedups, expected",
    [
        ((40.0, 20.0, 10.0), "not reproduced at this scale"),  # falls with L
        ((10.0, 12.0, 11.0), "not reproduced at this scale"),  # flat: within the run-to-run spread
        ((10.0, 100.0, 30.0), "not reproduced at this scale"),  # rises overall, but a step down beyond the spread
        ((10.0, 9.0, 40.0), "reproduced"),  # a dip within the spread
    ],
)
def test_the_speed_claim_follows_the_trend_over_receptive_fields(cpu_speedups, expected):
    rows = [demo_row(layers, value) for layers, value in zip((2, 4, 6), cpu_speedups, strict=True)]
    assert bench.speedup_claim([*reversed(rows), gated_row()]).verdict == expected  # sorted by field, gated left out


def test_fewer_than_three_fields_leave_the_speed_claim_untested():
    claim = bench.speedup_claim([demo_row(2, 5.0), demo_row(6, 38.0), gated_row()])
    assert claim.verdict == "not tested" and claim.measured == "2 demo receptive field(s) measured"
    assert bench.exactness_claim([]).verdict == "not tested"


def test_the_record_is_what_the_results_report_reads(tmp_path):
    path = tmp_path / "fast_wavenet" / "results" / "generation.json"
    (tmp_path / "fast_wavenet" / "__init__.py").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "fast_wavenet" / "__init__.py").write_text("")
    rows = [demo_row(2, 5.0), demo_row(4, 13.0), demo_row(6, 38.0)]
    bench.write_generation_record(rows, "`python -m papers.fast_wavenet.bench --record`", 2.04, str(path))
    data = json.loads(path.read_text())
    assert data["sweep"] == "papers/fast_wavenet/bench.py" and data["minutes"] == 2.0
    assert [claim["verdict"] for claim in data["claims"]] == ["reproduced", "reproduced"]
    text = results.build_report(str(tmp_path), str(tmp_path / "docs" / "results.md"))
    assert (
        "| fast_wavenet | `generation.json` | Speed-up over naive generation grows with the receptive field |" in text
    )
