"""What the runs of a study achieved: each run's summary, and per strategy its success rate
(with Wilson's interval) and evaluations to target.

Evaluations are the records whose harness ran (the baseline is the first; migrants and
proposals that never ran are not evaluations). A run reaches the target at its first
evaluation whose value is at least as good as `budget.target`. A run that never does is
right-censored at its evaluations: it needed more than the budget. The median evaluations to
target is the smallest count by which half the runs had reached it; with fewer than half
successful it lies beyond the budget and is reported as such (null in the JSON).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from metaexp.decide.objectives import Objective
from metaexp.record.records import ExperimentRecord
from metaexp.run.budget import Tally, budget_stop
from metaexp.spec import Spec

if TYPE_CHECKING:
    from metaexp.study.planning import PlannedRun

__all__ = ["RunSummary", "median_to_target", "summarize", "summarize_run", "wilson"]

WILSON_Z = 1.959964  # two-sided 95% normal quantile


# ---------------------------------------------------------------------------
# One run


@dataclass(frozen=True)
class RunSummary:
    """What one run achieved, read from its records."""

    tag: str
    strategy: str
    seed: int
    reached: bool
    evals_to_target: int | None  # the evaluation that first reached the target (1 = the baseline)
    evaluations: int
    best: float | None
    stop: str  # why the run stopped, from its records ("" if it has not finished)
    curve: list[float | None]  # best value so far after each evaluation


def summarize_run(spec: Spec, strategy: str, records: list[ExperimentRecord]) -> RunSummary:
    objective = Objective.of(spec)
    tally = Tally()
    for rec in records:
        tally.add(rec)
    curve: list[float | None] = []
    best: float | None = None
    first: int | None = None
    for rec in records:
        if not rec.status.harness_ran:
            continue
        if rec.value is not None and not rec.status.failed and objective.is_better(rec.value, best):
            best = rec.value
        curve.append(best)
        if first is None and objective.reached(best, spec.budget.target):
            first = len(curve)
    stop = budget_stop(spec, objective, tally) if records else None
    return RunSummary(
        spec.tag, strategy, spec.seed, first is not None, first, len(curve), best, stop or "", curve
    )


# ---------------------------------------------------------------------------
# Statistics


def wilson(successes: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion (sound at 0/n and n/n, unlike p ± z·se), by
    scipy; `z` is the two-sided normal quantile (1.96: 95%). No runs: the whole of [0, 1]."""
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import binomtest, norm

    interval = binomtest(successes, n).proportion_ci(confidence_level=2 * norm.cdf(z) - 1, method="wilson")
    return float(interval.low), float(interval.high)


def median_to_target(evals: Sequence[int | None]) -> int | None:
    """The smallest count by which half the runs reached the target; None runs never did
    (censored beyond the budget), so with fewer than half successful the median is None."""
    reached = sorted(e for e in evals if e is not None)
    need = math.ceil(len(evals) / 2)
    return reached[need - 1] if evals and len(reached) >= need else None


def _median(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def summarize(base: Spec, runs: Sequence[PlannedRun], summaries: Sequence[RunSummary]) -> dict[str, Any]:
    rows = []
    for strategy in dict.fromkeys(r.strategy for r in runs):
        mine = [s for s in summaries if s.strategy == strategy and s.stop]  # finished runs only
        unfinished = sum(1 for s in summaries if s.strategy == strategy and not s.stop)
        successes = sum(s.reached for s in mine)
        low, high = wilson(successes, len(mine))
        evals = [s.evals_to_target for s in mine]
        rows.append(
            {
                "strategy": strategy,
                "runs": len(mine),
                "unfinished": unfinished,
                "successes": successes,
                "success_rate": successes / len(mine) if mine else 0.0,
                "ci95": [round(low, 4), round(high, 4)],
                "median_evals_to_target": median_to_target(evals),
                "median_evals_successful": _median([e for e in evals if e is not None]),
                "median_best": _median([s.best for s in mine if s.best is not None]),
                "median_evaluations": _median([s.evaluations for s in mine]),
            }
        )
    return {
        "spec": base.tag,
        "metric": base.objective.primary,
        "direction": base.direction,
        "target": base.budget.target,
        "budget": runs[0].spec.budget.max_experiments if runs else None,
        "seeds": sorted({r.seed for r in runs}),
        "censoring": "runs that never reached the target count as needing more than the budget",
        "unfinished": "runs that failed or were stopped before their budget; left out, resumed on a rerun",
        "strategies": rows,
    }
