"""The batch-scaling benchmark's arithmetic and goal lines, on rows whose outcome is known (no timing)."""

import pytest

from benchmarks import fast_wavenet as section
from papers.fast_wavenet import bench


def scaling_row(batch, fused, xla, matmul, torch):
    return {
        "batch": batch,
        "fused_samples_per_s": fused,
        "fused_cpu_samples_per_s": fused * 1.5,
        "xla_samples_per_s": xla,
        "xla_cpu_samples_per_s": xla * 1.5,
        "best_impl": "fused" if fused >= xla else "xla",
        "matmul_flops_per_s": matmul,
        "matmul_cpu_flops_per_s": matmul,
        "matmul_fraction": 1e6 * max(fused, xla) / matmul,
        "matmul_cpu_fraction": 1.5e6 * max(fused, xla) / matmul,
        "torch_samples_per_s": torch,
        "torch_cpu_samples_per_s": torch,
        "torch_version": "torch 0, 1 threads",
    }


def test_flops_per_sample_counts_every_product_of_the_20_layer_wavenet():
    model = bench.BenchConfig("wavenet20", "gated", 2, 10, 64, 128, 1).build()
    # per layer [2*64, 128] taps and [64, 64 + 128] outputs; head [128, 128] and [128, 256]; 2 FLOPs a multiply-add
    assert bench.flops_per_sample(model) == 2 * (20 * (128 * 128 + 64 * 192) + 128 * 128 + 128 * 256)


def test_scaling_goals_name_what_is_met_and_what_falls():
    rows = [
        scaling_row(1, 17_000, 9_000, 40e9, 5_000),
        scaling_row(4, 30_000, 20_000, 60e9, 8_000),
        scaling_row(64, 25_000, 26_000, 50e9, 9_000),  # falls from batch 4, 52% of the matmul rate
    ]
    goals = section.scaling_goals(rows).splitlines()
    assert goals[0] == "- samples/s never falls as the batch grows: not met (falls from batch 4 to 64)"
    assert goals[1].startswith("- >= 50% of the matmul rate at batch >= 64: met; the smallest is 52% wall-clock")
    assert goals[2] == "- batch 1 >= 16,000 samples/s: met (17,000 wall-clock, 25,500 CPU-time)"
    assert goals[3] == "- batch 1 >= 3x the PyTorch peer: met (3.4x)"
    rows[0]["torch_samples_per_s"] = None
    assert section.scaling_goals(rows).splitlines()[3].endswith("not measured (no torch environment)")
    table = bench.scaling_table(rows)
    assert "| 64 | 25,000 (37,500) | 26,000 (39,000) | 50.0 (50.0) | 52% (78%) | 9,000 (9,000) | 2.9x |" in table


def test_profile_table_splits_the_step_into_its_timed_parts_and_the_rest():
    row = {"batch": 64, "step_cpu_us": 4000.0, "matmuls_cpu_us": 2000.0, "cache_cpu_us": 600.0}
    row["sampling_cpu_us"] = 400.0
    assert "| 64 | 4,000 | 2,000 | 600 | 400 | 1,000 | 50% | 15% | 10% |" in bench.profile_table([row])


def test_step_profile_times_each_part_of_a_small_stack():
    model = bench.BenchConfig("tiny", "gated", 1, 3, 8, 16, 1).build()
    weights = bench.wavenet.fused_weights(model)
    profile = bench.step_profile(model, batch=2, repeats=1, matmul_cpu_flops_per_s=1e9)
    assert set(profile) == set(bench.PROFILE_PARTS)
    assert all(us > 0 for us in profile.values())
    # the products' share is their FLOPs at the measured matmul rate: 2 per multiply-add of both products per layer
    assert profile["matmuls"] == pytest.approx(1e6 * 2 * 2 * (weights.taps.size + weights.outputs.size) / 1e9)
