"""The children-per-hour benchmark runs end to end on the search's smoke config (the real budget is `make bench`)."""

import pytest

from benchmarks import backprop_evolution


@pytest.mark.long  # trains and compiles five small groups
def test_renders_a_row_per_setting():
    text = backprop_evolution.markdown(
        group_sizes=(1,), num_steps=2, variant="search_smoke", num_children=2, vmapped_sizes=(2,)
    )
    assert "| 1 |" in text and "| 2 vmapped in one program |" in text and "children/hour (wall)" in text
    assert backprop_evolution._row_name(4, vmapped=False) == "4 side by side"
