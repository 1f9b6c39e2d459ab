"""The sweep benchmark's report from given measurements (running it trains 8 smoke runs: `make bench` does)."""

from benchmarks import sweep as bench


def _measurement(seconds: float, accuracy: float) -> dict:
    results = [({"seed": seed}, {"eval/accuracy": accuracy}) for seed in range(4)]
    return {"seconds": seconds, "ray_start": 6.0, "trial_seconds": 40.0, "workers": 2, "results": results}


def test_overhead_per_trial_counts_both_slots_and_metrics_are_compared():
    text = bench.render(_measurement(200.0, 0.5123456), _measurement(120.0, 0.512346), (3.0, 4.0))
    # (2*120-200)/4
    assert "| local Ray, 2 concurrent trials in reused workers | 120 | 40 (median, in a worker) | 6.0 | +10 |" in text
    assert "Ray took 0.60x the sequential wall time" in text and "were the same both ways" in text
    differing = bench.render(_measurement(200.0, 0.5), _measurement(120.0, 0.6), (3.0, 4.0))
    assert "NOT the same" in differing


def test_the_benchmark_sweep_is_four_trials_over_two_papers():
    assert [grid.config.split("/")[1] for grid in bench.GRIDS] == ["swish", "low_rank_local"]
    assert sum(len(grid.points()) for grid in bench.GRIDS) == 4
