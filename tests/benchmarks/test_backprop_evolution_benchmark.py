"""The children-per-hour benchmark runs end to end on the search's smoke config (the real budget is `make bench`)."""

from benchmarks import backprop_evolution


def test_renders_a_row_per_group_size():
    text = backprop_evolution.markdown(group_sizes=(1, 2), num_steps=2, variant="search_smoke", num_children=2)
    assert "| 1 |" in text and "| 2 |" in text and "children/hour (wall)" in text
