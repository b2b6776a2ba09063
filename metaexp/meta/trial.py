"""One outer trial: the sampled strategy's inner run(s), reported to the outer study as they go.

An inner run is an ordinary run (its own tag, branch, ledger and inner Optuna
study), started with a hook that, after every experiment, reports the
best-so-far to the outer trial and asks its pruner whether to go on. A pruned
inner run stops after the record it has just written: its branch and ledger
stay. With repeats, the R inner runs of one trial run one after another and
report on one axis: step = r * N + experiments of repeat r, value = the mean
of the finished repeats' finals and the running repeat's best-so-far.

This module runs in the driver (--parallel 1) or in a Ray worker; it reaches
the outer study through the shared storage, and only the driver tells it.
"""

from __future__ import annotations

import contextlib
import io
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from metaexp.record.records import ExperimentRecord, read_records

if TYPE_CHECKING:
    import optuna

    from metaexp.run.budget import Tally
    from metaexp.spec import Spec

PRUNED = "pruned by the outer study"


@dataclass(frozen=True)
class InnerRun:
    """What the outer study needs from one inner run's ledger."""

    tag: str
    curve: list[float]  # the best-so-far after each experiment that ran the harness
    experiments: int  # harness runs
    cost_usd: float
    wall_s: float
    stop_reason: str

    @property
    def pruned(self) -> bool:
        return self.stop_reason.startswith(PRUNED)

    @property
    def interrupted(self) -> bool:
        from metaexp.run.budget import interrupted

        return interrupted(self.stop_reason)


@dataclass(frozen=True)
class TrialJob:
    number: int
    trial_id: int
    specs: list[Spec]  # one per repeat
    study_name: str
    storage: str | None
    root: Path  # the repository: where the default journal storage lives
    prune: bool  # single objective and a pruner
    pruner: dict[str, Any] = field(default_factory=dict)  # PrunerSpec as data, rebuilt in a worker
    sign: float = 1.0  # -1: the outer direction is opposite to the inner metric's; reports are negated
    log: Path | None = None  # the inner runs' progress lines go here


def run_trial(job: TrialJob, study: optuna.Study | None = None) -> list[InnerRun]:
    """Run the repeats of one outer trial; stops early when its pruner says so."""
    import optuna

    from metaexp.run import run

    if study is None:
        study = open_outer(job)
    trial = optuna.trial.Trial(study, job.trial_id)
    budget = job.specs[0].budget.max_experiments or 1
    runs: list[InnerRun] = []
    with _log(job.log) as out:
        for r, spec in enumerate(job.specs):
            finals = [run.curve[-1] for run in runs]
            hook = _Reporter(trial, r * budget, finals, job) if job.prune else None
            result = run(spec, out=out, on_record=hook)
            runs.append(inner_run(spec, result.stop_reason))
            if runs[-1].pruned or not runs[-1].curve or result.interrupted:
                break
    return runs


def run_trial_in_worker(job: TrialJob) -> list[InnerRun]:
    """run_trial as a Ray task: the worker's population inner runs keep their lineages' processes
    for its next trial (metaexp/run/hosts.py)."""
    from metaexp.run.hosts import keep_between_runs

    keep_between_runs()
    return run_trial(job)


class _Reporter:
    """The inner run's on_record hook: report the best-so-far, stop if the pruner says so."""

    def __init__(self, trial: optuna.Trial, offset: int, finals: list[float], job: TrialJob) -> None:
        self.trial, self.offset, self.finals, self.sign = trial, offset, finals, job.sign

    def __call__(self, rec: ExperimentRecord, tally: Tally) -> str | None:
        if not rec.status.harness_ran or tally.best is None or tally.best.value is None:
            return None
        value = statistics.fmean([*self.finals, tally.best.value])
        step = self.offset + tally.ran
        self.trial.report(self.sign * value, step)
        if self.trial.should_prune():
            return f"{PRUNED} at experiment {rec.n} (best so far {tally.best.value:.6g})"
        return None


def open_outer(job: TrialJob) -> optuna.Study:
    import optuna

    from metaexp.meta.spec import PrunerSpec
    from metaexp.record.storage import make_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = make_pruner(PrunerSpec(**job.pruner), job.specs[0].budget.max_experiments or 1, len(job.specs))
    return optuna.load_study(
        study_name=job.study_name, storage=make_storage(job.storage, job.root), pruner=pruner
    )


def make_pruner(spec: Any, budget: int, repeats: int) -> optuna.pruners.BasePruner:
    """The outer study's pruner. Steps count inner experiments, over all repeats."""
    import optuna

    if spec.kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=spec.startup_trials, n_warmup_steps=spec.warmup_steps
        )
    if spec.kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=spec.rung0(budget * repeats), reduction_factor=spec.reduction_factor
        )
    if spec.kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=spec.rung0(budget * repeats),
            max_resource=budget * repeats,
            reduction_factor=spec.reduction_factor,
        )
    return optuna.pruners.NopPruner()


def inner_run(spec: Spec, stop_reason: str) -> InnerRun:
    from metaexp.record.workspace import Workspace

    records = read_records(Workspace(spec.root, spec.tag).out / "experiments.jsonl")
    return InnerRun(
        tag=spec.tag,
        curve=best_so_far(records),
        experiments=sum(1 for r in records if r.status.harness_ran),
        cost_usd=round(sum(float(r.usage.get("cost_usd", 0.0)) for r in records), 6),
        wall_s=round(sum(r.wall_time_s for r in records), 3),
        stop_reason=stop_reason,
    )


def best_so_far(records: list[ExperimentRecord]) -> list[float]:
    """After each harness run: the best value so far (from the first run that had one)."""
    best: float | None = None
    curve: list[float] = []
    for rec in records:
        if rec.best and rec.value is not None:
            best = rec.value
        if rec.status.harness_ran and best is not None:
            curve.append(best)
    return curve


@contextlib.contextmanager
def _log(path: Path | None) -> Iterator[TextIO]:
    """The inner runs' progress lines, appended to a file (or dropped)."""
    if path is None:
        yield io.StringIO()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        yield fh


def objective_values(runs: list[InnerRun], objectives: list[str], budget: int, reached: Any) -> list[float]:
    """The outer trial's values, each the mean over the repeats. `reached(value)`: the target test."""
    per_run = []
    for run in runs:
        padded = run.curve + [run.curve[-1]] * max(0, budget - len(run.curve))
        hit = next((i + 1 for i, v in enumerate(run.curve) if reached(v)), budget + 1)
        table = {
            "best": run.curve[-1],
            "auc": statistics.fmean(padded[:budget]),
            "experiments_to_target": float(hit),
            "cost_usd": run.cost_usd,
            "wall_s": run.wall_s,
        }
        per_run.append([table[name] for name in objectives])
    return [statistics.fmean(column) for column in zip(*per_run, strict=True)]


def reached_test(plan: Any) -> Any:
    """`reached(value)`: whether an inner best reaches the meta study's target (meta.target, or the
    inner spec's budget.target)."""
    from metaexp.decide.objectives import Objective

    objective = Objective.of(plan.spec)
    target = plan.meta.target if plan.meta.target is not None else plan.spec.budget.target
    return lambda value: objective.reached(value, target)
