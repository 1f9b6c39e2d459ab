"""The generation benchmark: its rows carry the keys the docs table and `make bench` read, both generators agree
on the timed pixels, and a bad model name is refused."""

import json

import pytest

from common.registry import UnknownNameError
from papers.fast_generation import bench

KEYS = {"model", "batch", "naive_samples_per_s", "fast_samples_per_s", "max_abs_logit_diff"}


@pytest.mark.long  # compiles both generators of a tiny model: 20 s idle, minutes on a loaded 2-core machine
@pytest.mark.slow
def test_rows_compare_both_generators_on_the_same_pixels(monkeypatch):
    tiny = bench.ModelSpec((8, 8, 1), 1, 4, 2, naive_rows=0.5, fast_rows=4)
    monkeypatch.setitem(bench.MODELS, "tiny", tiny)
    (row,) = bench.run(models=["tiny"], batches=[2], repeats=1)
    assert KEYS <= set(row) and json.loads(json.dumps(row)) == row
    assert row["naive_pixels"] == 4 and row["fast_pixels"] == 32 and row["batch"] == 2
    assert row["max_abs_logit_diff"] < 1e-4 and row["same_pixels"]
    assert row["naive_samples_per_s"] > 0 and row["fast_samples_per_s"] > 0
    assert "| tiny | 2 |" in bench.table([row])


def test_configurations_and_bad_model_name():
    assert bench.configurations(quick=True) == [("small", 1), ("small", 4)]
    full = bench.configurations(quick=False)
    assert {batch for _, batch in full} == {1, 4, 16, 64, 256} and {name for name, _ in full} == {"small", "cifar10"}
    valid = "cifar10, small, wavenet20"
    with pytest.raises(UnknownNameError, match=f"unknown bench model 'imagenet'; valid choices: {valid}"):
        bench.configurations(quick=False, models=["imagenet"])


def test_speedup_figure_is_written(tmp_path):
    rows = [
        {
            "model": "small",
            "batch": b,
            "speedup": 10.0 * b,
            "cpu_speedup": 5.0 * b,
            "fast_samples_per_s": b,
            "device": "cpu",
        }
        for b in (1, 4, 16)
    ]
    path = tmp_path / "speedup.png"
    bench.plot_speedup(rows, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_wavenet_rows_come_from_the_fast_wavenet_measurement_in_this_benchs_keys(monkeypatch):
    from papers.fast_wavenet import bench as wavenet_bench

    seen = {}

    def fake_measure(config, *, quick, impl, repeats):
        seen.update(config=config, repeats=repeats)
        return {
            "naive_samples": 2,
            "fast_samples": 4000,
            "naive_samples_per_s": 20.0,
            "fast_samples_per_s": 8000.0,
            "speedup": 400.0,
            "naive_ms_per_step": 50.0,
            "fast_ms_per_step": 0.125,
            "cpu_speedup": 500.0,
            "max_abs_logit_diff": 1e-7,
            "same_samples": True,
        }

    monkeypatch.setattr(wavenet_bench, "measure", fake_measure)
    (row,) = bench.run(models=[bench.WAVENET], batches=[16], repeats=2)
    config = seen["config"]
    layers = config.num_blocks * config.layers_per_block
    assert (layers, config.residual_channels, config.skip_channels) == (20, 64, 128)
    assert (config.batch, seen["repeats"]) == (16, 2)
    assert KEYS <= set(row) and row["model"] == "wavenet20" and row["same_pixels"] and row["speedup"] == 400.0
    assert "| wavenet20 | 16 |" in bench.table([row])
    # the paper's claims are judged on PixelCNN++ rows only
    assert all(claim.verdict == "not tested" for claim in bench.claims([row]))
