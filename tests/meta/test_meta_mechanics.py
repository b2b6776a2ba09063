"""The outer study's mechanics, checked where a plausible slip would go unnoticed: repeats report on
one axis at the budget they used, the pruner's rungs count every repeat's experiments, the best
strategy is named by its re-evaluation on fresh seeds, and sampled inner specs are ordered."""

from __future__ import annotations

import io
import statistics
from collections.abc import Callable

import optuna
import pytest
from conftest import Project
from helpers import PENALISED, STRATEGY_SPACE, best_so_far, landscape_with, meta_project

from metaexp.meta.outer import plan_meta, run_meta
from metaexp.meta.reevaluation import FRESH_SEEDS, reevaluate
from metaexp.meta.space import distributions, sampled_spec
from metaexp.meta.spec import PrunerSpec
from metaexp.meta.trial import make_pruner
from metaexp.record.storage import make_storage, open_study
from metaexp.spec import load_spec

SPACE = STRATEGY_SPACE
PENALTY = {"harness.env.PENALTY": {"type": "categorical", "choices": ["0", "50"]}}
# The landscape 3 worse on odd inner seeds: consecutive repeats of one strategy differ from the start.
SEEDED = landscape_with('loss += 3 * (int(os.environ["METAEXP_SEED"]) % 2)')


def test_repeats_report_on_one_axis_at_the_budget_each_has_used(
    make_project: Callable[[str], Project],
) -> None:
    """With 2 repeats of 3 experiments, the outer trial's intermediate values sit at steps 1..6:
    repeat 0's best-so-far at 1..3, then at 3 + k the mean of repeat 0's final and repeat 1's
    best-so-far after k experiments (the pruner compares trials at equal inner budgets)."""
    pruner = {"kind": "median", "startup_trials": 5}  # reports, never prunes the only trial
    project, path = meta_project(make_project, SPACE, budget=3, trials=1, repeats=2, pruner=pruner)
    project.write("evaluate.py", SEEDED)
    run_meta(plan_meta(load_spec(path), path), out=io.StringIO())
    (trial,) = open_study(None, project.root, "landscape-meta", "minimize").get_trials()
    assert trial.state.name == "COMPLETE"
    first, second = (best_so_far(project, tag) for tag in trial.user_attrs["tags"])
    assert len(first) == len(second) == 3
    assert first[-1] != second[0], (first, second)  # else the mean would equal either repeat's value
    expected = {k: first[k - 1] for k in (1, 2, 3)}
    expected.update({3 + k: statistics.fmean([first[-1], second[k - 1]]) for k in (1, 2, 3)})
    assert sorted(trial.intermediate_values) == [1, 2, 3, 4, 5, 6]
    for step, value in expected.items():
        assert trial.intermediate_values[step] == pytest.approx(value), step
    assert trial.value == pytest.approx(statistics.fmean([first[-1], second[-1]]))


def test_successive_halvings_first_rung_counts_the_experiments_of_every_repeat() -> None:
    """Outer steps run over all repeats: with 2 repeats of 10 experiments, min_resource auto is a
    quarter of 20, so a trial that reports worst is not pruned before step 5."""

    def pruned_at(budget: int, repeats: int) -> int | None:
        pruner = make_pruner(PrunerSpec(kind="successive_halving"), budget, repeats)
        study = optuna.create_study(direction="minimize", pruner=pruner)
        dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
        steps = budget * repeats
        for _ in range(6):  # strong trials that go all the way (the pruner records their rungs)
            strong = study.ask(dist)
            for step in range(1, steps + 1):
                strong.report(1.0, step)
                strong.should_prune()
            study.tell(strong, 1.0)
        weak = study.ask(dist)
        for step in range(1, steps + 1):
            weak.report(9.0, step)
            if weak.should_prune():
                return step
        return None

    at = pruned_at(10, 2)
    assert at is not None and at >= 5, at
    single = pruned_at(10, 1)  # one repeat of 10: the first rung at 2
    assert single is not None and single < 5, single


def test_the_best_strategy_is_the_best_fresh_mean_not_the_best_outer_value(
    make_project: Callable[[str], Project],
) -> None:
    """Trial 1 (penalised by 50) has the flattering outer value; on fresh seeds its every run is
    above 50 and trial 0's below: trial 0 is named. Each pick runs on every fresh seed, seeds no
    outer trial uses, and its fresh values are those runs' ledger bests."""
    project, path = meta_project(make_project, PENALTY, budget=4, trials=2, reevaluate=2, reevaluate_seeds=2)
    project.write("evaluate.py", PENALISED)
    plan = plan_meta(load_spec(path), path)
    study = optuna.create_study(
        storage=make_storage(plan.spec.storage, project.root), study_name=plan.tag, direction="minimize"
    )
    dists = distributions(plan.space)
    for penalty, value in (("0", 40.0), ("50", 1.0)):
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.COMPLETE,
                value=value,
                params={"harness.env.PENALTY": penalty},
                distributions=dists,
            )
        )
    out = io.StringIO()
    summary = reevaluate(plan, study, project.root, out)
    assert summary is not None, out.getvalue()
    seeds = [plan.spec.seed + FRESH_SEEDS + i for i in range(2)]
    assert summary["seeds"] == seeds
    assert [p["trial"] for p in summary["picks"]] == [1, 0]  # by outer value
    for pick in summary["picks"]:
        tags = [f"landscape-meta-pick{pick['trial']}-s{i}" for i in range(2)]
        assert [project.records(tag)[0].seed for tag in tags] == seeds
        assert pick["fresh"] == [best_so_far(project, tag)[-1] for tag in tags]
        assert pick["mean"] == pytest.approx(statistics.fmean(pick["fresh"]))
    fresh = {p["trial"]: p["fresh"] for p in summary["picks"]}
    assert all(v >= 50 for v in fresh[1]) and all(v < 50 for v in fresh[0])
    assert summary["best_trial"] == 0 and summary["best_params"] == {"harness.env.PENALTY": "0"}
    assert study.user_attrs["reevaluation"] == summary


def test_sampled_inner_specs_default_to_the_ordered_schedule(make_project: Callable[[str], Project]) -> None:
    """An outer trial's value must not depend on timing: its inner spec is ordered unless the spec
    chose a schedule itself, which is kept."""
    project = make_project("repo")
    path = project.spec()
    spec = load_spec(path)
    assert "schedule" not in spec.ray.model_fields_set and spec.ray.schedule == "async"
    inner = sampled_spec(spec, {"strategy.explore_rate": 0.1}, "landscape-meta-t0", 7, path)
    assert inner.ray.schedule == "ordered" and inner.seed == 7 and inner.tag == "landscape-meta-t0"
    chosen = load_spec(project.spec(ray={"schedule": "async"}))
    assert sampled_spec(chosen, {}, "landscape-meta-t1", 8, path).ray.schedule == "async"
