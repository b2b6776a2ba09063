"""Meta studies: an outer Optuna study over strategies, each trial a real inner run of the landscape."""

from __future__ import annotations

import io
import os
import statistics
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import Project, git
from helpers import PENALISED, STRATEGY_SPACE, best_so_far, meta_project

from metaexp.errors import SpecError
from metaexp.meta.outer import plan_meta, run_meta
from metaexp.meta.space import load_strategy_space
from metaexp.record.storage import open_study
from metaexp.spec import load_spec

SPACE = STRATEGY_SPACE


def run(path: Path, resume: bool = False, **overrides: Any) -> str:
    out = io.StringIO()
    run_meta(plan_meta(load_spec(path), path, **overrides), resume=resume, out=out)
    return out.getvalue()


def outer(project: Project, tag: str = "landscape-meta") -> list[optuna.trial.FrozenTrial]:
    return open_study(None, project.root, tag, "minimize").get_trials()


def harness_runs(project: Project, tag: str) -> int:
    return sum(r.status.harness_ran for r in project.records(tag))


def ledger_best(project: Project, tag: str) -> float:
    return [r.value for r in project.records(tag) if r.best][-1]


def test_outer_trials_are_inner_runs_whose_best_is_the_value(make_project):
    project, path = meta_project(make_project, SPACE, trials=4, pruner="none", sampler="random")
    text = run(path)
    trials = outer(project)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4, text
    for t in trials:
        tag = f"landscape-meta-t{t.number}"
        assert t.user_attrs["tags"] == [tag]
        project.assert_consistent(tag)  # its own branch, ledger and inner Optuna study
        assert harness_runs(project, tag) == 6 == t.user_attrs["experiments"]
        assert t.value == ledger_best(project, tag)
    report = project.cli("report", "metaexp.yaml").stdout
    assert "meta study landscape-meta: 4 outer trials, 24 inner experiments" in report
    assert "parameter importances for best" in report
    best = min(trials, key=lambda t: t.value)
    assert f"best strategy: trial {best.number} (best {best.value:.6g}" in report
    assert (project.root / ".metaexp" / "landscape-meta" / "meta.png").stat().st_size > 10_000


def test_the_pruner_stops_weak_inner_runs_and_keeps_their_branch(make_project):
    space = {"harness.env.PENALTY": {"type": "categorical", "choices": ["0", "50"]}}
    pruner = {"kind": "median", "startup_trials": 1, "warmup_steps": 2}
    project, path = meta_project(make_project, space, trials=5, pruner=pruner, sampler="random", seed=6)
    project.write("evaluate.py", PENALISED)
    text = run(path)
    trials = outer(project)
    states = [(t.params["harness.env.PENALTY"], t.state.name) for t in trials]
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert any(t.params["harness.env.PENALTY"] == "50" for t in pruned), (states, text)
    for t in pruned:  # (each trial has seeds of its own: a weak seed of the good strategy may be pruned too)
        tag = t.user_attrs["tags"][0]
        records = project.assert_consistent(tag)
        assert 1 < harness_runs(project, tag) < 6  # stopped early, what it ran is recorded
        assert t.user_attrs["stop"][0].startswith("pruned by the outer study")
        accepted = [r.commit for r in records if r.status.accepted]
        assert git(project.root, "rev-parse", f"autoexp/{tag}").strip() == accepted[-1]  # the branch stays
        assert t.intermediate_values  # the best-so-far, reported per inner experiment
    # the sampled PENALTY reached each inner run's harness: every best-so-far of a penalised trial is
    # above 50, none of an unpenalised one (the landscape's losses stay under 50 from its start)
    best = {t.number: min(t.intermediate_values.values()) for t in trials if t.intermediate_values}
    worst = {t.number: max(t.intermediate_values.values()) for t in trials if t.intermediate_values}
    penalised = {t.number for t in trials if t.params["harness.env.PENALTY"] == "50"}
    assert len(best) == len(trials) and penalised and len(penalised) < len(trials), states
    assert all(best[n] >= 50 for n in penalised) and all(worst[n] < 50 for n in best if n not in penalised)


def test_resume_after_a_kill_reaches_the_trial_count_without_duplicate_tags(make_project):
    project, _ = meta_project(make_project, SPACE, trials=3, budget=5, pruner="none")
    killed = project.cli("meta", "metaexp.yaml", env={"METAEXP_CRASHPOINT": "after-jsonl:3"}, check=False)
    assert killed.returncode == -9, killed.stderr  # killed inside trial 0's inner run, after its 3rd record
    assert [t.state.name for t in outer(project)] == ["RUNNING"]
    again = project.cli("meta", "metaexp.yaml", check=False)
    assert again.returncode == 1 and "--resume" in again.stderr
    project.cli("meta", "metaexp.yaml", "--resume")
    trials = outer(project)
    assert [(t.number, t.state.name) for t in trials] == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE")]
    tags = sorted(
        p.name for p in (project.root / ".metaexp").iterdir() if p.name.startswith("landscape-meta-")
    )
    assert tags == ["landscape-meta-t0", "landscape-meta-t1", "landscape-meta-t2"]
    for t in trials:
        project.assert_consistent(t.user_attrs["tags"][0])  # the resumed inner run counted nothing twice
        assert harness_runs(project, t.user_attrs["tags"][0]) == 5
    assert trials[0].value == ledger_best(project, "landscape-meta-t0")
    project.cli("meta", "metaexp.yaml", "--resume", "--trials", "4")  # more trials: asked, not redone
    assert [t.state.name for t in outer(project)] == ["COMPLETE"] * 4


def test_repeats_run_each_strategy_on_several_seeds_and_average(make_project):
    project, path = meta_project(make_project, SPACE, trials=2, budget=4, repeats=2, pruner="none")
    run(path)
    for t in outer(project):
        tags = [f"landscape-meta-t{t.number}-r0", f"landscape-meta-t{t.number}-r1"]
        assert t.user_attrs["tags"] == tags
        assert [project.records(tag)[0].seed for tag in tags] == [2 * t.number, 2 * t.number + 1]  # fresh
        assert t.value == pytest.approx(sum(ledger_best(project, tag) for tag in tags) / 2)


def test_a_bad_dotted_key_is_a_clear_error(make_project):
    project, _ = meta_project(make_project, {"strategy.explore_rat": {"type": "float", "low": 0, "high": 1}})
    proc = project.cli("meta", "metaexp.yaml", check=False)
    assert proc.returncode == 1
    assert "strategy.explore_rat: 'strategy.explore_rat' is not a key of the spec" in proc.stderr
    bad = project.root / "bad.yaml"
    bad.write_text("strategy.explore_rate.low: {type: float, low: 0, high: 1}\n")
    with pytest.raises(SpecError, match=r"strategy\.explore_rate is a value, not a section"):
        load_strategy_space(str(bad), project.root)
    bad.write_text(
        "operator.style.bold: {type: float, low: 0, high: 1}\n"
        "metrics.loss.direction: {type: categorical, choices: [minimize]}\n"
    )
    load_strategy_space(str(bad), project.root)  # a style mix's weight and a metric's field resolve
    assert not (project.root / ".metaexp" / "landscape-meta").exists()  # refused before any trial


def test_the_shipped_strategy_space_resolves_against_the_landscape_spec(project):
    path, space = load_strategy_space("search_spaces/strategy.yaml", project.root)
    assert path.name == "strategy.yaml" and "strategy.explore_rate" in space


def test_a_sampled_spec_the_schema_refuses_is_a_failed_trial(make_project):
    space = {"strategy.tournament_size": {"type": "int", "low": -3, "high": 0}}
    project, path = meta_project(make_project, space, trials=2)
    text = run(path)
    trials = outer(project)
    assert [t.state.name for t in trials] == ["FAIL", "FAIL"]
    assert (
        "strategy.tournament_size: Input should be greater than or equal to 1"
        in trials[0].user_attrs["error"]
    )
    assert "FAIL the sampled strategy (strategy.tournament_size=" in text


def test_multi_objective_with_a_pruner_is_refused_at_validate_time(make_project):
    project, _ = meta_project(make_project, SPACE, objectives=["best", "wall_s"], pruner="median")
    proc = project.cli("validate", "metaexp.yaml", check=False)
    assert proc.returncode == 1
    assert "Optuna cannot prune multi-objective studies" in proc.stderr


def test_a_multi_objective_outer_study_tells_every_objective(make_project):
    project, path = meta_project(make_project, SPACE, trials=2, budget=4, objectives=["best", "auc"])
    run(path)
    improved = 0
    for t in outer(project):
        curve = best_so_far(project, t.user_attrs["tags"][0])
        assert len(curve) == 4, curve
        improved += curve[0] > curve[-1]  # there the mean best-so-far is not the best
        assert t.values[0] == curve[-1] == ledger_best(project, t.user_attrs["tags"][0])
        assert t.values[1] == pytest.approx(statistics.fmean(curve))  # auc: the mean best-so-far
    assert improved, "no inner run improved: auc would equal best"
    assert "Pareto front (best, auc)" in project.cli("report", "metaexp.yaml").stdout


def test_parallel_outer_trials_run_as_ray_tasks(make_project, ray_session):
    project, path = meta_project(make_project, SPACE, trials=4, budget=5, pruner="none", parallel=2)
    text = run(path)
    trials = outer(project)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4, text
    for t in trials:
        tag = t.user_attrs["tags"][0]
        assert harness_runs(project, tag) == 5
        assert t.value == ledger_best(project, tag)
    assert len({os.fspath(project.root / ".metaexp" / t.user_attrs["tags"][0]) for t in trials}) == 4


def test_an_inner_run_whose_worker_dies_runs_again_and_the_study_goes_on(make_project, ray_session):
    from helpers import worker_killer

    meta = {"trials": 3, "pruner": "none", "parallel": 2}
    project, path = meta_project(make_project, SPACE, budget=5, **meta)
    harness = worker_killer(project, target="3", once=True)  # kills the task running an inner run, once
    path = project.spec(
        budget={"max_experiments": 5}, harness=harness, meta={"space": "strategy.yaml", **meta}
    )
    text = run(path)
    assert not (project.root.parent / "kill-the-worker").exists()  # the kill happened
    trials = outer(project)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3, text
    for t in trials:  # the killed inner run resumed from its ledger: nothing lost, nothing twice
        tag = t.user_attrs["tags"][0]
        records = project.assert_consistent(tag)
        assert harness_runs(project, tag) == 5 and len(records) == len({r.n for r in records})


def test_a_population_inner_run_stops_cleanly_when_its_hook_says_so(project, ray_session):
    from metaexp.run import run

    strategy = {"islands": 2, "population": 2, "migration": {"every": 3}}
    spec = load_spec(
        project.spec(strategy=strategy, ray={"max_concurrent_evals": 2, "eval_resources": {"num_cpus": 0.5}})
    )
    seen: list[int] = []

    def hook(rec: Any, tally: Any) -> str | None:
        seen.append(rec.n)
        return "pruned by the outer study (test)" if tally.ran >= 3 else None

    result = run(spec, out=io.StringIO(), on_record=hook)
    assert result.stop_reason == "pruned by the outer study (test)"
    records = project.assert_consistent()
    assert seen == [r.n for r in records]  # called once per record, in order
    # what was in flight is recorded too: up to 2 evaluations, and up to 2 evaluated ones concluding
    assert 3 <= sum(r.status.harness_ran for r in records) <= 3 + 2 + 2
    assert git(project.root, "rev-parse", "autoexp/landscape/best").strip()


def test_the_best_strategy_is_named_after_a_re_evaluation_on_fresh_seeds(make_project):
    from metaexp.meta.reevaluation import FRESH_SEEDS

    project, path = meta_project(
        make_project, SPACE, trials=4, budget=5, pruner="none", reevaluate=2, reevaluate_seeds=2
    )
    text = run(path)
    trials = outer(project)
    seeds = {project.records(t.user_attrs["tags"][0])[0].seed for t in trials}
    assert len(seeds) == 4  # each outer trial on a seed of its own
    study = open_study(None, project.root, "landscape-meta", "minimize")
    summary = study.user_attrs["reevaluation"]
    assert summary["seeds"] == [FRESH_SEEDS, FRESH_SEEDS + 1] and not set(summary["seeds"]) & seeds
    top2 = sorted(trials, key=lambda t: t.value)[:2]
    assert [p["trial"] for p in summary["picks"]] == [t.number for t in top2]
    for pick in summary["picks"]:  # the fresh runs exist, on the fresh seeds, and their mean is the pick's
        for i, seed in enumerate(summary["seeds"]):
            records = project.assert_consistent(f"landscape-meta-pick{pick['trial']}-s{i}")
            assert (
                records[0].seed == seed
                and harness_runs(project, f"landscape-meta-pick{pick['trial']}-s{i}") == 5
            )
        assert pick["mean"] == sum(pick["fresh"]) / len(pick["fresh"])
    best = min(summary["picks"], key=lambda p: p["mean"])
    assert summary["best_trial"] == best["trial"]
    assert f"re-evaluated on fresh seeds {summary['seeds']}: trial {best['trial']}" in text


def _trial(state: str, curve: list[float], value: float | None = None):
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    return create_trial(
        state=TrialState[state],
        value=value,
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        intermediate_values={step: v for step, v in enumerate(curve, 1)},
    )


def test_with_pruning_the_picks_are_compared_at_an_equal_budget() -> None:
    """Successive halving lets the first trial finish (nothing to compare it with yet) and prunes
    most others early: the complete trials alone would be the picks. Compared at the deepest step
    three trials reached, the first trial (worst there) is not among them."""
    from metaexp.meta.reevaluation import candidates

    first = _trial("COMPLETE", [9, 8, 8, 7, 7, 6], value=6)  # minimised; ran all 6 steps
    rest = [
        _trial("PRUNED", [9, 5, 4]),  # reached step 3
        _trial("PRUNED", [9, 6, 3, 3]),  # step 4
        _trial("PRUNED", [9, 9]),  # pruned at step 2: not compared at step 3
        _trial("PRUNED", [7, 7, 6]),  # step 3
    ]
    trials = [first, *rest]
    for n, t in enumerate(trials):
        t.number = n
    picked = candidates(trials, 3, -1.0)
    assert [t.number for t in picked] == [2, 1, 4]  # at step 3: 3, 4, 6; the first trial had 8
    assert [t.number for t in candidates(trials, 2, -1.0)] == [2, 0]  # step 4: 3 vs 7
    unpruned = [_trial("COMPLETE", [5, 4], value=4), _trial("COMPLETE", [3, 2], value=2)]
    for n, t in enumerate(unpruned):
        t.number = n
    assert [t.number for t in candidates(unpruned, 3, -1.0)] == [1, 0]  # by value


def test_auto_first_rung_is_a_quarter_of_the_inner_budget() -> None:
    """A run that starts worst is not pruned before a quarter of its experiments (min_resource
    auto); with min_resource 1 the same run is pruned after its first."""
    from optuna.distributions import FloatDistribution

    from metaexp.meta.spec import PrunerSpec
    from metaexp.meta.trial import make_pruner

    def pruned_at(min_resource: int | str) -> int | None:
        pruner = make_pruner(PrunerSpec(kind="successive_halving", min_resource=min_resource), 20, 1)
        study = optuna.create_study(direction="minimize", pruner=pruner)
        for _ in range(6):  # strong runs that go the whole budget (the pruner records their rungs)
            strong = study.ask({"x": FloatDistribution(0, 1)})
            for step in range(1, 21):
                strong.report(1.0, step)
                strong.should_prune()
            study.tell(strong, 1.0)
        trial = study.ask({"x": FloatDistribution(0, 1)})
        for step in range(1, 21):
            trial.report(9.0, step)
            if trial.should_prune():
                return step
        return None

    assert pruned_at(1) == 1
    first = pruned_at("auto")
    assert first is not None and first >= 5  # 20 experiments: the first rung at 5


@pytest.mark.parametrize("bad", [0, "half", True])
def test_a_bad_min_resource_is_one_clear_line(make_project, bad: object) -> None:
    project = make_project("repo")
    pruner = {"kind": "successive_halving", "min_resource": bad}
    path = project.spec(budget={"max_experiments": 8}, meta={"pruner": pruner})
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    message = str(exc.value)
    assert f"meta.pruner.min_resource: min_resource {bad!r}: a number of experiments" in message
    assert "problem(s)" not in message  # one line, not pydantic's one per union member
