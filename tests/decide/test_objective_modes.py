"""Objective modes through the loop: constraints discard at once, weighted scores, Pareto studies."""

from __future__ import annotations

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
        operator={"kind": "perturb", "space": "space.yaml", "style": "bold"},
    )
    records = project.assert_consistent()
    violating = [r for r in records[1:] if r.metrics.get("width", 0) > 9]
    assert violating and all(r.status is Status.DISCARD and "width <= 9" in r.reason for r in violating)
    assert all(r.metrics["width"] <= 9 for r in records if r.status is Status.KEEP)
    study = open_study(None, project.root, "landscape", "minimize")
    trial = next(t for t in study.trials if t.user_attrs["experiment"] == violating[0].n)
    assert trial.constraints["width <= 9"] > 0  # infeasible in the dashboard too


def test_weighted_mode_keeps_by_the_score(project: Project) -> None:
    two_metrics(project)
    project.run(
        harness=TWO_HARNESS,
        metrics=TWO,
        budget={"max_experiments": 10},
        objective={"mode": "weighted", "primary": "loss", "weights": {"loss": 1.0, "width": 0.5}},
    )
    records = project.assert_consistent()
    for rec in records:  # the decision value is the folded, weighted sum: higher is better
        assert rec.value == -1.0 * rec.metrics["loss"] + 0.5 * rec.metrics["width"]


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
    assert len(complete) == sum(1 for r in records if not r.status.failed)
    for t in complete:
        rec = records[t.user_attrs["experiment"] - 1]
        assert t.values == [rec.metrics["loss"], rec.metrics["width"]]
