"""The children-per-program benchmark runs end to end on the search's smoke config (the real budget is `make bench`)."""

import pytest

from benchmarks import swish_search_children


@pytest.mark.long
def test_renders_a_row_per_group_size():
    text = swish_search_children.markdown(group_sizes=(1, 2), num_steps=2, variant="search_smoke")
    assert "| 1 |" in text and "| 2 |" in text and "CPU s per child" in text
