"""The decision: what a measured candidate means for its lineage. Made here, and only here.

In order: a failed evaluation keeps its status (crash, timeout, or a cascade's discard); the
baseline is kept; a candidate that breaks a constraint or gate is discarded at once; an escape that
ran is accepted as such; then the candidate is kept if it beats its yardstick: a single lineage's
ratchet asks the objective against its parent's metrics (every objective mode, min_delta and ties),
a population asks whether the child would be admitted (DEAP selection, MAP-Elites cells); with a
noisy harness the paired test against the parent must also say better. Otherwise it is explored
when the strategy says so (a tie with a ratchet's parent under explore_ties, every
explore_every-th proposal of the lineage, or the candidate's draw under explore_rate), and
discarded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from metaexp.candidate import Candidate, line_count
from metaexp.decide.population import Population, features_of, fitness_values
from metaexp.decide.selectors import Individual
from metaexp.record.records import ExperimentRecord, Status

if TYPE_CHECKING:
    from metaexp.decide.objectives import Objective
    from metaexp.evaluate.harness import Outcome
    from metaexp.evaluate.repeats import Measured
    from metaexp.spec import Spec


def decide(
    spec: Spec,
    objective: Objective,
    pop: Population,
    cand: Candidate,
    commit: str,
    outcome: Outcome,
    test: Measured | None = None,
    incumbent: Mapping[str, float] | None = None,
) -> tuple[Status, str]:
    """The status of candidate `commit` and why; `incumbent`: a ratchet's parent's metrics."""
    if outcome.status is not None:
        return outcome.status, outcome.reason
    if cand.kind == "baseline":
        return Status.KEEP, ""
    accepted, feasible, why = objective.decide(
        outcome.metrics, dict(incumbent or {}) if pop.ratchet else None
    )
    if not feasible:
        return Status.DISCARD, why
    if cand.escape:
        return Status.ESCAPE, ""
    if _beats(spec, objective, pop, cand, commit, outcome, test, accepted):
        return Status.KEEP, ""
    s = spec.strategy
    plateau = s.explore_ties and pop.ratchet and test is None  # a noisy test has no exact ties
    if plateau and objective.tie(outcome.metrics, dict(incumbent or {})):
        return Status.EXPLORE, "a tie with its parent: a step across the plateau (strategy.explore_ties)"
    every = s.explore_every is not None and (cand.generation + 2) % s.explore_every == 0
    if every or cand.draw < s.explore_rate:
        return Status.EXPLORE, ""
    return Status.DISCARD, test.reason if test is not None else ""


def _beats(
    spec: Spec,
    objective: Objective,
    pop: Population,
    cand: Candidate,
    commit: str,
    outcome: Outcome,
    test: Measured | None,
    accepted: bool,
) -> bool:
    if pop.ratchet:
        return test.better if test is not None else accepted
    if test is not None and not test.better:
        return False
    value = objective.value(outcome.metrics)
    assert value is not None
    return pop.consider(child(spec, cand, commit, outcome.metrics, value))


def child(spec: Spec, cand: Candidate, commit: str, metrics: dict[str, float], value: float) -> Individual:
    """The candidate as its population would hold it."""
    lines = {"lines": line_count(cand.tree)}
    probe = ExperimentRecord(0, commit, None, "", Status.DISCARD, "", metrics, extra=lines)
    return Individual(commit, 0, fitness_values(metrics, value, spec), features_of(probe, spec), cand.lineage)
