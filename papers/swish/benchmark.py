"""Former name of papers/swish/reproduce.py, kept only while papers/swish/search.py still imports its table and plot
helpers from here; delete it once search.py imports papers.swish.reproduce."""

from papers.swish.reproduce import render_plot, render_table, summarise

__all__ = ["render_plot", "render_table", "summarise"]
