"""The locally connected benchmark runs end to end at one tiny shape (the real shapes belong to `make bench`)."""

from benchmarks import locally_connected


def test_locally_connected_benchmark_renders_both_passes():
    text = locally_connected.markdown(shapes=((8, 4, 2),), batch=2, repeats=1)
    assert "| 8x8x4 | 2 | forward |" in text and "| 8x8x4 | 2 | forward + backward |" in text
    assert "LRLC speed vs K convs" in text
