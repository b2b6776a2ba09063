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
from metaexp.meta.trial import TrialJob, objective_values, reached_test, run_trial

if TYPE_CHECKING:
    import optuna

FRESH_SEEDS = 1_000_000  # inner seeds from here on are never an outer trial's (trials x repeats below it)


def reevaluate(plan: MetaPlan, study: optuna.Study, root: Path, out: TextIO) -> dict[str, Any] | None:
    """Re-run the meta.reevaluate best trials on meta.reevaluate_seeds fresh seeds; name the best."""
    from optuna.trial import TrialState

    meta, spec = plan.meta, plan.spec
    sign = -1.0 if plan.directions[0] == "minimize" else 1.0
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    top = sorted(done, key=lambda t: -sign * float(t.value))[: meta.reevaluate]
    if not top:
        return None
    seeds = [spec.seed + FRESH_SEEDS + i for i in range(meta.reevaluate_seeds)]
    rows = [row for trial in top if (row := _rerun(plan, study, root, trial, seeds, out)) is not None]
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


def _rerun(
    plan: MetaPlan, study: optuna.Study, root: Path, trial: Any, seeds: list[int], out: TextIO
) -> dict[str, Any] | None:
    meta, spec = plan.meta, plan.spec
    tags = [f"{plan.tag}-pick{trial.number}-s{i}" for i in range(len(seeds))]
    try:
        specs = [
            sampled_spec(spec, dict(trial.params), t, s, plan.space_path)
            for t, s in zip(tags, seeds, strict=True)
        ]
    except SpecError as exc:
        print(f"re-evaluating trial {trial.number}: {exc}", file=out)
        return None
    job = TrialJob(trial.number, trial._trial_id, specs, plan.tag, spec.storage, root, prune=False)
    runs = run_trial(job, study)
    if not runs or not all(r.curve for r in runs):
        return None
    reached = reached_test(plan)
    values = [objective_values([r], list(meta.objectives), plan.budget, reached)[0] for r in runs]
    mean = statistics.fmean(values)
    print(
        f"  pick trial {trial.number} (outer {trial.value:.6g}): fresh seeds {values} mean {mean:.6g}",
        file=out,
    )
    return {
        "trial": trial.number,
        "params": dict(trial.params),
        "outer": trial.value,
        "fresh": values,
        "mean": mean,
    }
