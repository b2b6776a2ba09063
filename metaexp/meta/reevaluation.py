"""Naming the best strategy: the top outer trials run again on seeds no trial used, and the pick is
the best mean there (an outer study's best value is a maximum over noisy trials, so it flatters).

Pick p's run on fresh seed i is tagged `<meta-tag>-pick<trial>-s<i>` and uses inner seed
FRESH_SEEDS + i; the outcome is the study's user attr `reevaluation` and a line per pick.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from metaexp.errors import SpecError
from metaexp.meta.plan import MetaPlan
from metaexp.meta.space import sampled_spec
from metaexp.meta.trial import (
    InnerRun,
    TrialJob,
    objective_values,
    reached_test,
    run_trial,
    run_trial_in_worker,
)

if TYPE_CHECKING:
    import optuna

FRESH_SEEDS = 1_000_000  # inner seeds from here on are never an outer trial's (trials x repeats below it)


def reevaluate(plan: MetaPlan, study: optuna.Study, root: Path, out: TextIO) -> dict[str, Any] | None:
    """Re-run the meta.reevaluate best trials on meta.reevaluate_seeds fresh seeds; name the best."""
    meta, spec = plan.meta, plan.spec
    sign = -1.0 if plan.directions[0] == "minimize" else 1.0
    top = candidates(study.get_trials(deepcopy=False), meta.reevaluate, sign)
    if not top:
        return None
    seeds = [spec.seed + FRESH_SEEDS + i for i in range(meta.reevaluate_seeds)]
    picks = [(trial, jobs) for trial in top if (jobs := _jobs(plan, root, trial, seeds, out)) is not None]
    runs = iter(run_jobs([job for _, jobs in picks for job in jobs], meta.parallel, plan, study))
    rows = [row for trial, jobs in picks if (row := _row(plan, trial, [next(runs) for _ in jobs], out))]
    if not rows:
        return None
    best = max(rows, key=lambda r: sign * r["mean"])
    summary = {"seeds": seeds, "picks": rows, "best_trial": best["trial"], "best_params": best["params"]}
    study.set_user_attr("reevaluation", summary)
    print(
        f"best strategy, re-evaluated on fresh seeds {seeds}: trial {best['trial']} "
        f"{meta.objectives[0]}={best['mean']:.6g} {best['params']}",
        file=out,
    )
    return summary


def candidates(trials: list[Any], k: int, sign: float) -> list[Any]:
    """The k trials to re-evaluate. Nothing pruned: the k best complete trials. With pruning, the
    trials are compared at an equal budget, the deepest step that at least k of them reached (each
    reports its best-so-far at every step): a pruner lets few trials finish (successive halving
    completed 1-2 of 16 in bench/meta_pruning.py), and the first trials always finish, before the
    pruner has anything to compare them with, so the complete ones alone are no pick."""
    from optuna.trial import TrialState

    done = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    if not pruned:
        return sorted(done, key=lambda t: -sign * float(t.value))[:k]
    reported = [t for t in [*done, *pruned] if t.intermediate_values]
    depths = sorted((max(t.intermediate_values) for t in reported), reverse=True)
    step = depths[min(k, len(depths)) - 1]

    def at(t: Any) -> float:  # its best-so-far at `step` (the last report at or before it)
        return float(t.intermediate_values[max(s for s in t.intermediate_values if s <= step)])

    reached = [t for t in reported if max(t.intermediate_values) >= step]
    return sorted(reached, key=lambda t: -sign * at(t))[:k]


def _jobs(plan: MetaPlan, root: Path, trial: Any, seeds: list[int], out: TextIO) -> list[TrialJob] | None:
    """Pick `trial`'s runs on the fresh seeds, one job each (so they can run side by side)."""
    spec = plan.spec
    tags = [f"{plan.tag}-pick{trial.number}-s{i}" for i in range(len(seeds))]
    try:
        specs = [
            sampled_spec(spec, dict(trial.params), t, s, plan.space_path)
            for t, s in zip(tags, seeds, strict=True)
        ]
    except SpecError as exc:
        print(f"re-evaluating trial {trial.number}: {exc}", file=out)
        return None
    number, trial_id = trial.number, trial._trial_id
    return [TrialJob(number, trial_id, [s], plan.tag, spec.storage, root, prune=False) for s in specs]


def run_jobs(
    jobs: list[TrialJob], parallel: int, plan: MetaPlan, study: optuna.Study
) -> list[list[InnerRun]]:
    """Each job's inner runs: one after another here, or up to `parallel` at once as Ray tasks (as the
    outer trials run); a job whose task failed has none."""
    if parallel <= 1 or len(jobs) <= 1:
        return [run_trial(job, study) for job in jobs]
    import ray

    from metaexp.run.cluster import RETRIES, connect

    connect(plan.spec.ray)
    task = ray.remote(num_cpus=0, max_retries=RETRIES, retry_exceptions=False)(run_trial_in_worker)
    refs: list[Any] = []
    running: list[Any] = []
    for job in jobs:
        if len(running) >= parallel:
            _, running = ray.wait(running, num_returns=1)
        refs.append(task.remote(job))
        running.append(refs[-1])
    return [_result(ref) for ref in refs]


def _result(ref: Any) -> list[InnerRun]:
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayError:  # its task failed on every try: the pick is left out
        return []


def _row(plan: MetaPlan, trial: Any, runs: list[list[InnerRun]], out: TextIO) -> dict[str, Any] | None:
    """A pick's re-evaluation: its objective on each fresh seed, and their mean."""
    flat = [run for job in runs for run in job]
    if len(flat) != len(runs) or not all(r.curve for r in flat):
        return None
    meta = plan.meta
    reached = reached_test(plan)
    values = [objective_values([r], list(meta.objectives), plan.budget, reached)[0] for r in flat]
    mean = statistics.fmean(values)
    outer = (
        f"outer {trial.value:.6g}"
        if trial.value is not None
        else f"pruned at step {max(trial.intermediate_values)}"
    )
    print(f"  pick trial {trial.number} ({outer}): fresh seeds {values} mean {mean:.6g}", file=out)
    return {
        "trial": trial.number,
        "params": dict(trial.params),
        "outer": trial.value,
        "fresh": values,
        "mean": mean,
    }
