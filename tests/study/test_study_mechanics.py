"""A study's plan and figures, checked where a plausible slip would go unnoticed: each run is ordered
on its own seed, and each strategy's success rate, Wilson interval and censored median count its
finished runs exactly."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import Project

from metaexp.study.planning import plan_runs
from metaexp.study.summary import RunSummary, median_to_target, summarize, wilson


def test_a_studys_runs_are_ordered_on_consecutive_seeds_from_the_specs(
    make_project: Callable[[str], Project],
) -> None:
    """Run i of a strategy has seed base.seed + i and the ordered schedule (its records depend on
    the seed only); a schedule the spec chose itself is kept."""
    project = make_project("repo")
    path = project.spec(seed=5, budget={"max_experiments": 4, "target": 0.0})
    base, runs = plan_runs(path, ["hill_climb", "islands"], 3)
    assert base.seed == 5
    assert [(r.strategy, r.seed) for r in runs] == [
        (s, seed) for s in ("hill_climb", "islands") for seed in (5, 6, 7)
    ]
    assert [r.spec.seed for r in runs] == [r.seed for r in runs]
    assert runs[0].spec.tag == "landscape-hill_climb-s5"
    assert all(r.spec.ray.schedule == "ordered" for r in runs)
    chosen = project.spec(seed=5, budget={"max_experiments": 4, "target": 0.0}, ray={"schedule": "async"})
    assert {r.spec.ray.schedule for r in plan_runs(chosen, ["islands"], 2)[1]} == {"async"}


def test_a_strategys_row_counts_its_finished_runs_exactly(make_project: Callable[[str], Project]) -> None:
    """Of 4 planned runs, 3 finished and 1 of them reached the target (at evaluation 5): the rate is
    1/3, the interval Wilson's for 1 of 3, and the censored median (2 of 3 needed) is beyond the
    budget; with 2 of 2 finished runs reaching it at 5 and 9, the median is the first count by which
    half had, 5."""
    project = make_project("repo")
    path = project.spec(budget={"max_experiments": 10, "target": 0.0})
    base, runs = plan_runs(path, ["hill_climb", "islands"], 4)

    def summary(strategy: str, seed: int, at: int | None, stop: str = "budget") -> RunSummary:
        return RunSummary(f"t-{strategy}-{seed}", strategy, seed, at is not None, at, 10, 0.0, stop, [])

    summaries = [
        summary("hill_climb", 0, 5),
        summary("hill_climb", 1, None),
        summary("hill_climb", 2, None),
        summary("hill_climb", 3, None, stop=""),  # unfinished: left out
        summary("islands", 0, 9),
        summary("islands", 1, 5),
        summary("islands", 2, None, stop=""),
        summary("islands", 3, None, stop=""),
    ]
    rows = {row["strategy"]: row for row in summarize(base, runs, summaries)["strategies"]}
    hill, islands = rows["hill_climb"], rows["islands"]
    assert (hill["runs"], hill["successes"], hill["unfinished"]) == (3, 1, 1)
    assert hill["success_rate"] == pytest.approx(1 / 3)
    assert hill["ci95"] == pytest.approx(wilson(1, 3), abs=1e-4)
    assert hill["ci95"] == pytest.approx([0.0615, 0.7923], abs=1e-4)  # Wilson 95% for 1/3
    assert hill["median_evals_to_target"] is None
    assert (islands["runs"], islands["successes"], islands["unfinished"]) == (2, 2, 2)
    assert islands["ci95"] == pytest.approx(wilson(2, 2), abs=1e-4)
    assert islands["median_evals_to_target"] == 5
    assert median_to_target([7, None]) == 7 and median_to_target([7, None, None]) is None
