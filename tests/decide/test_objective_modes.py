"""Objective modes through the loop: constraints discard at once, weighted scores, Pareto studies."""

from __future__ import annotations

from itertools import pairwise

import pytest
from conftest import Project
from helpers import TWO, TWO_HARNESS, two_metrics

from metaexp.record.records import Status
from metaexp.record.storage import open_study


def test_constraints_discard_at_once_and_reach_optuna(project: Project) -> None:
    two_metrics(project)
    project.run(
        harness=TWO_HARNESS,
        metrics=TWO,
        budget={"max_experiments": 14},
        objective={"primary": "loss", "constraints": ["width <= 9"]},
        operator={"kind": "perturb", "space": "space.yaml", "style": {"bold": 0.5, "conservative": 0.5}},
    )
    records = project.assert_consistent()
    violating = [r for r in records[1:] if r.metrics.get("width", 0) > 9]
    assert violating and all(r.status is Status.DISCARD and "width <= 9" in r.reason for r in violating)
    feasible = [r for r in records[1:] if r.metrics.get("width", 0) <= 9 and not r.status.failed]
    assert all("width <= 9" not in r.reason for r in feasible)  # discarded, if at all, for its loss
    kept = [r for r in feasible if r.status is Status.KEEP]
    assert kept and all(r.metrics["width"] <= 9 for r in records if r.status is Status.KEEP)
    study = open_study(None, project.root, "landscape", "minimize")
    trial = next(t for t in study.trials if t.user_attrs["experiment"] == violating[0].n)
    assert trial.constraints["width <= 9"] > 0  # infeasible in the dashboard too


def test_weighted_mode_keeps_by_the_score(project: Project) -> None:
    two_metrics(project)
    project.run(
        harness=TWO_HARNESS,
        metrics=TWO,
        budget={"max_experiments": 10},
        objective={"mode": "weighted", "primary": "loss", "weights": {"loss": 1.0, "width": 10.0}},
    )
    records = project.assert_consistent()
    for rec in records:  # the decision value is the folded, weighted sum: higher is better
        assert rec.value == -1.0 * rec.metrics["loss"] + 10.0 * rec.metrics["width"]
    incumbent, disagreed = records[0], 0
    for rec in records[1:]:  # kept exactly when the score beats the incumbent's, whatever the loss says
        assert (rec.status is Status.KEEP) == (rec.value > incumbent.value), (rec.n, rec.status, rec.value)
        disagreed += (rec.metrics["loss"] < incumbent.metrics["loss"]) != (rec.status is Status.KEEP)
        incumbent = rec if rec.status is Status.KEEP else incumbent
    assert disagreed, "no try where the loss alone would have decided otherwise"


def test_pareto_mode_records_every_metric_as_trial_values(project: Project) -> None:
    two_metrics(project)
    project.run(
        harness=TWO_HARNESS,
        metrics=TWO,
        budget={"max_experiments": 8},
        objective={"mode": "pareto", "primary": "loss", "ties": "keep"},
    )
    records = project.records()
    study = open_study(None, project.root, "landscape", ["minimize", "maximize"])
    assert study.metric_names == ["loss", "width"]
    complete = [t for t in study.trials if t.values]
    assert len(records) == 8 and len(complete) >= 2, [(r.n, r.status) for r in records]
    assert len(complete) == sum(1 for r in records if not r.status.failed)
    for t in complete:
        rec = records[t.user_attrs["experiment"] - 1]
        assert t.values == [rec.metrics["loss"], rec.metrics["width"]]


PLATEAU = (  # only X matters: a change of Y or WIDTH ties its parent exactly
    "import re\nx = float(re.search(r'^X = (\\S+)', open('params.py').read(), re.M).group(1))\n"
    "print('loss:', round((x - 1.5) ** 2, 6))\n"
)


@pytest.mark.parametrize("ties", [True, False], ids=["explore_ties", "hill_climb"])
def test_explore_ties_walks_a_plateau_that_hill_climbing_discards(project: Project, ties: bool) -> None:
    project.write("plateau.py", PLATEAU)
    project.run(
        harness={"command": "python plateau.py", "immutable": ["evaluate.py", "plateau.py"]},
        operator={"kind": "perturb", "space": "space.yaml"},
        strategy={"explore_ties": ties},
        budget={"max_experiments": 16},
        seed=3,
    )
    records = project.assert_consistent()
    by_commit = {r.commit: r for r in records}
    tied = [r for r in records[1:] if r.value is not None and r.value == by_commit[r.parent].value]
    assert tied, "no tie in 15 moves: the test's premise failed"
    if ties:
        assert all(r.status is Status.EXPLORE and "strategy.explore_ties" in r.reason for r in tied)
        # a tied step walks the plateau but is no new best: the best marks improve strictly
        assert not any(r.best for r in tied), [(r.n, r.status, r.value) for r in tied if r.best]
        bests = [r.value for r in records if r.best and r.value is not None]
        assert all(b < a for a, b in pairwise(bests)), bests
    else:
        assert all(r.status is Status.DISCARD for r in tied) and not any(
            r.status is Status.EXPLORE for r in records
        )
