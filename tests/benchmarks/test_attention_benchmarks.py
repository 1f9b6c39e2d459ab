"""The attention benchmarks run end to end at one tiny shape (the real shapes belong to `make bench`)."""

import sys

import pytest

from benchmarks import halo_attention, local_attention


@pytest.mark.long  # a minute of compilation; the benchmark's maths is tested beside its layer
def test_local_attention_benchmark_renders_a_row():
    text = local_attention.markdown(shapes=((8, 16),))
    assert "| 8x8x16 |" in text and "memory saved" in text


@pytest.mark.long
def test_halo_attention_benchmark_renders_a_row_per_pass(tmp_path):
    text = halo_attention.markdown(shapes=((8, 16),), timm_python=str(tmp_path / "missing"))
    assert "| 8x8x16 | forward |" in text and "| 8x8x16 | forward + backward |" in text
    assert "halo b=8 / SASA unfold" in text and "timm: not run" in text and "not run |" in text


def test_timm_results_are_parsed_into_the_table(tmp_path, monkeypatch):
    """The subprocess protocol: one JSON line per (shape, block size); a stand-in script plays timm."""
    fake = tmp_path / "timm_halo_attn.py"
    fake.write_text(
        "import json, sys\n"
        "for b in (8, 4):\n"
        "    print(json.dumps({'size': 8, 'channels': 16, 'block_size': b, 'forward_images_per_second': 2.0,"
        " 'forward_backward_images_per_second': 1.0, 'torch': 't', 'timm': 'm', 'threads': 2}))\n"
    )
    monkeypatch.setattr(halo_attention, "TIMM_SCRIPT", str(fake))
    results = halo_attention.timm_measurements(((8, 16),), python=sys.executable)
    assert results[8, 8] == {"forward": 2.0, "forward + backward": 1.0, "versions": "torch t, timm m, 2 threads"}
