"""Populations with noisy harnesses (paired tests on the workers), Pareto fronts and constraints."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import Project
from helpers import NOISY, NOISY_HARNESS, RAY, TWO, TWO_HARNESS, check_population, run_population, two_metrics

from metaexp.decide.population import replay
from metaexp.decide.selectors import dominates
from metaexp.errors import SpecError
from metaexp.record.records import Status
from metaexp.record.storage import open_study
from metaexp.spec import load_spec

pytestmark = pytest.mark.usefixtures("ray_session")

ISLANDS = {"islands": 2, "population": 2}


def test_a_noisy_population_tests_each_child_against_its_parent(project: Project) -> None:
    project.write("noisy.py", NOISY)
    noise = {
        "method": "sprt",
        "reevaluate_elites": True,
        "sprt": {"delta": 0.3, "min_runs": 3, "max_runs": 6},
    }
    small = {"kind": "perturb", "space": "space.yaml", "style": "conservative"}  # children that win
    settings = {"harness": NOISY_HARNESS, "noise": noise, "strategy": ISLANDS, "operator": small}
    run_population(project, **settings, budget={"max_experiments": 8})
    records = check_population(project)
    tested = [r for r in records[1:] if r.status.harness_ran and not r.status.failed]
    assert [r for r in tested if r.status is Status.KEEP], [(r.n, r.status) for r in tested]
    twice = Counter()
    for rec in tested:
        runs = rec.extra["runs"]
        assert 1 <= len(runs) <= 12
        assert rec.value == pytest.approx(sum(r["metrics"]["loss"] for r in runs) / len(runs))
        for run in rec.extra["incumbent_runs"]:
            assert run["commit"] == rec.parent  # paired with its own parent
            assert run["seed"] in {r["seed"] for r in runs}
            twice[(run["commit"], run["seed"])] += 1
        if rec.status is Status.KEEP:
            assert rec.extra["noise"]["mean_gain"] > 0 and rec.extra["confirmed"] is True
        elif "confirmed" in rec.extra:  # a winner whose fresh seeds did not hold it up
            assert rec.extra["confirmed"] is False
    # the driver's cache: a parent runs a seed again only when two children were measured at once
    assert max(twice.values(), default=1) <= RAY["max_concurrent_evals"]
    run_population(project, **settings, budget={"max_experiments": 10})  # resume: the cache is rebuilt
    assert len(check_population(project)) >= 10


def test_a_pareto_population_keeps_a_front_and_tells_optuna_every_metric(project: Project) -> None:
    two_metrics(project)
    objective = {"mode": "pareto", "primary": "loss", "constraints": ["width <= 20"]}
    strategy = {**ISLANDS, "population": 3, "selection": "nsga2"}
    run_population(
        project,
        harness=TWO_HARNESS,
        metrics=TWO,
        objective=objective,
        strategy=strategy,
        operator={"kind": "perturb", "space": "space.yaml", "style": "bold"},
        budget={"max_experiments": 16},
    )
    records = check_population(project)
    spec = load_spec(project.root / "metaexp.yaml")
    for rec in records:
        if rec.status.harness_ran and rec.metrics.get("width", 0) > 20:
            assert rec.status is Status.DISCARD and "width <= 20" in rec.reason
    for pop in replay(spec, records, 2):
        assert pop.members and all(len(m.values) == 2 and m.values[1] <= 20 for m in pop.members)
    # the hall of fame is the Pareto front of every accepted individual: (loss down, width up)
    hof = json.loads((project.root / ".metaexp" / "landscape" / "population.json").read_text())[
        "hall_of_fame"
    ]
    assert hof["signs"] == [-1.0, 1.0]
    front = [(-m["values"][0], m["values"][1]) for m in hof["members"]]
    assert front and not any(dominates(a, b) for a in front for b in front)
    accepted = {(-r.metrics["loss"], r.metrics["width"]) for r in records if r.status.accepted and r.metrics}
    assert all(p in front or any(dominates(f, p) for f in front) for p in accepted)
    study = open_study(None, project.root, "landscape", ["minimize", "maximize"])
    assert study.metric_names == ["loss", "width"]
    assert [t.values for t in study.best_trials]  # the dashboard's Pareto front is non-empty


def test_pareto_in_a_population_needs_nsga2(project: Project) -> None:
    two_metrics(project)
    with pytest.raises(SpecError, match=r"strategy\.selection: nsga2"):
        load_spec(
            project.spec(
                harness=TWO_HARNESS,
                metrics=TWO,
                objective={"mode": "pareto", "primary": "loss"},
                strategy={**ISLANDS, "selection": "tournament"},
            )
        )


def test_noise_with_pareto_is_refused(project: Project) -> None:
    two_metrics(project)
    with pytest.raises(SpecError, match="compares one value per seed"):
        load_spec(
            project.spec(
                harness=TWO_HARNESS,
                metrics=TWO,
                objective={"mode": "pareto", "primary": "loss"},
                noise={"method": "sprt"},
            )
        )


def test_a_hybrid_population_tunes_on_workers_with_a_schedule_per_island(project: Project) -> None:
    from conftest import git

    from metaexp.operators.target import read_value

    op = {"kind": "hybrid", "llm": None, "space": "space.yaml", "tune": {"sampler": "random", "budget": 4}}
    islands = [{"schedule": {"llm": 1.0, "params": 0.0}}, {"schedule": {"llm": 0.0, "params": 1.0}}]
    run_population(
        project,
        operator=op,
        strategy={"islands": islands, "population": 2},
        budget={"max_experiments": None, "max_evaluations": 24},
    )
    records = check_population(project)
    proposed = [r for r in records[1:] if r.status.harness_ran]
    restarts = [r for r in proposed if r.island == 0]
    steps = [r for r in proposed if r.island == 1]
    assert restarts and steps
    assert all(r.extra["arm"] == "restart" and 1 <= len(r.extra["runs"]) <= 4 for r in restarts)
    assert all(r.extra["arm"] == "params" and "runs" not in r.extra for r in steps)
    for rec in restarts:  # the committed constants are the best tuning run's
        best = rec.extra["tune"]["best_run"]
        chosen = rec.extra["runs"][best or 0]
        assert rec.params == chosen["params"] and rec.value == chosen["value"]
        text = git(project.root, "show", f"{rec.commit}:params.py").encode()
        assert {k: read_value("params.py", text, k) for k in ("X", "Y", "WIDTH")} == rec.params
    used = sum(max(1, len(r.extra.get("runs", []))) for r in records if r.status.harness_ran)
    assert 24 <= used <= 24 + 4 * RAY["max_concurrent_evals"]  # tuning in flight may finish past the cap


def test_a_kept_crossover_child_can_be_a_parent_later(project: Project) -> None:
    """The island gets the composed tree from the driver (it only proposed the two parents)."""
    spaced = "X = 3.0\n\n# (apart, so that git merges a change to each)\n\n\nY = -2.0\n\n#\n\n\nWIDTH = 7\n"
    project.write("params.py", spaced)
    strategy = {"islands": 1, "population": 4, "crossover_rate": 0.6}
    result = run_population(
        project, strategy=strategy, operator={"style": "conservative"}, budget={"max_experiments": 24}
    )
    assert not result.aborted, result.stop_reason
    records = check_population(project)
    kept = {r.commit for r in records if r.style == "crossover" and r.status.accepted}
    assert kept, "no crossover child was kept"
    assert any(r.parent in kept for r in records)  # a kept child was chosen as a parent afterwards
    assert not any(r.status is Status.CRASH for r in records)
