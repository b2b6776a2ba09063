"""Decision edges: ties and exact hits at each boundary (best, target, noisy ties, escapes, cells)."""

from __future__ import annotations

import pytest
from conftest import Project

from metaexp.candidate import Candidate
from metaexp.decide.archives import MapElites
from metaexp.decide.decision import decide
from metaexp.decide.objectives import Objective
from metaexp.decide.population import Population, new_population
from metaexp.decide.selectors import Individual
from metaexp.evaluate.program import Outcome
from metaexp.evaluate.repeats import Measured
from metaexp.record.records import Status
from metaexp.spec import load_spec

LOSS = Objective("loss", -1.0)  # minimised, as the landscape's loss is


# ---------------------------------------------------------------- best so far and the target


@pytest.mark.parametrize(
    ("value", "best", "better"),
    [(1.0, 2.0, True), (2.0, 2.0, False), (3.0, 2.0, False), (5.0, None, True)],
)
def test_a_tie_with_the_best_so_far_is_not_a_new_best(value: float, best: float | None, better: bool) -> None:
    """is_better is strict: equal to the best so far is no new record."""
    assert LOSS.is_better(value, best) is better


@pytest.mark.parametrize(
    ("value", "target", "reached"),
    [(6.0, 7.0, True), (7.0, 7.0, True), (7.5, 7.0, False), (None, 7.0, False), (7.0, None, False)],
)
def test_a_target_met_exactly_is_reached(value: float | None, target: float | None, reached: bool) -> None:
    """reached is inclusive: a value equal to the target reaches it."""
    assert LOSS.reached(value, target) is reached


def test_a_target_equal_to_the_baseline_stops_after_it(project: Project) -> None:
    """budget.target equal to the baseline's loss (7.0) counts as reached: one record, then stop."""
    result = project.run(budget={"max_experiments": 50, "target": 7.0})
    records = project.records()
    assert records[0].metrics["loss"] == 7.0  # the premise: the landscape baseline's loss
    assert result.stop_reason == "target 7 reached"
    assert len(records) == 1


# ---------------------------------------------------------------- a noisy tie is no plateau step


def test_a_noisy_tie_with_the_parent_is_discarded_not_explored(project: Project) -> None:
    """With a paired test, a mean equal to the parent's is DISCARD with the test's reason, never EXPLORE."""
    spec = load_spec(project.spec(strategy={"explore_ties": True}, noise={"method": "sprt"}))
    objective = Objective.of(spec)
    pop = new_population(spec)
    assert pop.ratchet
    parent = {"loss": 2.0}
    cand = Candidate("p" * 40, {}, "Y 0 -> 1")
    outcome = Outcome(None, {"loss": 2.0})
    assert objective.tie(outcome.metrics, parent)  # the premise: an exact tie
    reason = "not better: all 3 gains equal 0 <= delta/2 (no noise)"
    test = Measured(outcome, better=False, reason=reason)
    status, why = decide(spec, objective, pop, cand, "c" * 40, outcome, test, parent)
    assert (status, why) == (Status.DISCARD, reason)
    # without the test the same tie is a plateau step
    status, why = decide(spec, objective, pop, cand, "c" * 40, outcome, None, parent)
    assert status is Status.EXPLORE and "strategy.explore_ties" in why


# ---------------------------------------------------------------- escapes and MAP-Elites cells


def test_an_escape_resets_stagnation_even_when_it_does_not_improve() -> None:
    """Applying an ESCAPE starts the stagnation count again, so escapes come `patience` apart."""
    pop = Population(4, "tournament", (1.0,))
    pop.seed(Individual("a", 1, (5.0,), (), 0))
    for i in range(3):
        pop.apply(Individual(f"d{i}", i + 2, (1.0,), (), 0), Status.DISCARD)
    assert pop.stagnation == 3
    pop.apply(Individual("e", 5, (2.0,), (), 0), Status.ESCAPE)  # worse than the best (5.0)
    best = pop.best()
    assert best is not None and best.commit == "a"  # the premise: no improvement
    assert pop.stagnation == 0
    pop.apply(Individual("d3", 6, (1.0,), (), 0), Status.DISCARD)
    assert pop.stagnation == 1


def test_a_child_that_only_ties_its_cell_elite_is_not_admitted() -> None:
    """MAP-Elites: consider() is False for a tie with the cell's elite, as the archive rejects it."""
    pop = Population(4, "map_elites", (1.0,), archive=MapElites([(0.0, 10.0, 2)]))
    pop.seed(Individual("a", 1, (5.0,), (1.0,), 0))
    tie = Individual("b", 2, (5.0,), (2.0,), 0)  # the same cell, equal fitness
    assert pop.archive is not None and pop.archive.cell(tie) == (0,)
    assert pop.consider(tie) is False
    assert pop.archive.add(tie, pop.signs) is False  # consider agrees with the archive
    assert pop.consider(Individual("c", 3, (5.5,), (2.0,), 0)) is True  # strictly better: in
    assert pop.consider(Individual("d", 4, (1.0,), (7.0,), 0)) is True  # an empty cell: in
