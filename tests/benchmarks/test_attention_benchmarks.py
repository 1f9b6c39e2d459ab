"""The attention benchmarks run end to end at one tiny shape (the real shapes belong to `make bench`)."""

from benchmarks import halo_attention, local_attention


def test_local_attention_benchmark_renders_a_row():
    text = local_attention.markdown(shapes=((8, 16),))
    assert "| 8x8x16 |" in text and "memory saved" in text


def test_halo_attention_benchmark_renders_a_row():
    text = halo_attention.markdown(shapes=((8, 16),))
    assert "| 8x8x16 |" in text and "b=8 / SASA unfold" in text
