"""Escaping-local-optima studies: every strategy on every seed under one budget, then how often
each reached the spec's known optimum (`budget.target`), how fast, and their best-so-far curves.

Each (strategy, seed) is an ordinary run with its own tag `<tag>-<strategy>-s<seed>` in the
spec's project and storage, so its records, branches and Optuna study are those of any run, and
a study that is run again skips the runs its ledgers show finished and resumes the others.

planning.py  one validated spec per (strategy, seed); strategy presets and YAMLs
running.py   run or resume every planned run, then write the outputs
summary.py   each run's summary; per strategy, success rates (Wilson) and evaluations to target
outputs.py   study.json, the table in study.txt, the curves in study.png
"""

from __future__ import annotations

from metaexp.api import callable_package
from metaexp.study.outputs import format_table, plot_curves, write_outputs
from metaexp.study.planning import DEFAULT_STRATEGIES, PlannedRun, plan_runs, resolve_strategy
from metaexp.study.running import StudyResult, run_study
from metaexp.study.summary import RunSummary, median_to_target, summarize, summarize_run, wilson

__all__ = [
    "DEFAULT_STRATEGIES",
    "PlannedRun",
    "RunSummary",
    "StudyResult",
    "format_table",
    "median_to_target",
    "plan_runs",
    "plot_curves",
    "resolve_strategy",
    "run_study",
    "summarize",
    "summarize_run",
    "wilson",
    "write_outputs",
]

callable_package(__name__)  # metaexp.study(...) calls metaexp.api.study (see metaexp/api.py)
