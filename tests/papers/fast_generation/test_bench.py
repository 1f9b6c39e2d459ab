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
    with pytest.raises(UnknownNameError, match="unknown bench model 'imagenet'; valid choices: cifar10, small"):
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
