"""What a run achieved: summary figures, text blocks, and the plots of `metaexp report`.

summary.py        the figures (Summary, summarize) and their text block (format_summary)
progress_plot.py  the progress plot: every try, the running best, the kept points' labels
lineage_plot.py   the lineage tree of the best: its chain of parents, what else each step tried
validation.py     the held-out validation table and plot at each new best
population.py     the text block of a population run: islands and hall of fame
archive.py        heat maps of the islands' MAP-Elites archives
dashboard.py      optuna-dashboard on a run's Optuna storage

Everything here reads records and writes nothing but the PNGs; `metaexp report`
and `metaexp status` call it.
"""

from __future__ import annotations

from metaexp.report.population import format_population
from metaexp.report.progress_plot import DPI, FIGSIZE, plot_progress
from metaexp.report.progress_plot import _draw as _draw  # private; tests/report uses it
from metaexp.report.progress_plot import _label_kept as _label_kept  # private; tests/report uses it
from metaexp.report.progress_plot import _place_labels as _place_labels  # private; tests/report uses it
from metaexp.report.summary import Summary, format_summary, summarize
from metaexp.report.validation import format_validation, plot_validation, validation_points

__all__ = [
    "DPI",
    "FIGSIZE",
    "Summary",
    "format_population",
    "format_summary",
    "format_validation",
    "plot_progress",
    "plot_validation",
    "summarize",
    "validation_points",
]
