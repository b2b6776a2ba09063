"""The outer study: ask a strategy, run it as inner run(s), tell the outer objective(s).

The driver is the outer study's one writer of trial states (ask and tell);
inner runs report intermediate values themselves (trial.py). Outer trial n
runs under tag `<meta-tag>-t<n>` (`-t<n>-r<k>` with repeats), in the spec's
storage beside everything else. `--resume` redoes the trials a kill left
RUNNING (their inner runs resume from their own ledgers) and asks new ones up
to the requested count; trial numbers, hence tags, are never reused.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from metaexp.errors import MetaexpError, SpecError
from metaexp.meta.plan import MetaPlan, meta_tag, plan_meta
from metaexp.meta.space import distributions, sampled_spec, space_as_data
from metaexp.meta.trial import (
    InnerRun,
    TrialJob,
    make_pruner,
    objective_values,
    reached_test,
    run_trial,
    run_trial_in_worker,
)
from metaexp.record.workspace import Workspace

if TYPE_CHECKING:
    import optuna

# meta_tag and plan_meta moved to plan.py; importers of metaexp.meta.outer still find them here.
__all__ = ["MetaPlan", "MetaResult", "meta_tag", "plan_meta", "run_meta"]

POLL_S = 1.0  # how long one wait for a finished outer trial may block (parallel)


@dataclass(frozen=True)
class MetaResult:
    trials: int  # finished outer trials in the study
    interrupted: bool


def run_meta(plan: MetaPlan, resume: bool = False, out: TextIO = sys.stderr) -> MetaResult:
    from metaexp.run.hosts import kept

    ws = Workspace(plan.spec.root, plan.tag)
    ws.open()  # the meta tag's lock: one driver per outer study
    try:
        with kept():  # population inner runs one after another share their lineages' processes
            return _Outer(plan, ws, out).drive(resume)
    finally:
        ws.close()


class _Outer:
    def __init__(self, plan: MetaPlan, ws: Workspace, out: TextIO) -> None:
        self.plan, self.ws, self.out = plan, ws, out
        self.meta = plan.meta
        self.study = _create_study(plan, ws.root)
        self.dists = distributions(plan.space)

    def drive(self, resume: bool) -> MetaResult:
        self._check_config(resume)
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        redo = [t for t in trials if t.state == TrialState.RUNNING]
        fresh = max(0, self.meta.trials - len(trials))
        if redo:
            print(
                f"resuming {len(redo)} interrupted outer trial(s): {[t.number for t in redo]}", file=self.out
            )
        jobs = self._jobs(redo, fresh)
        interrupted = self._run_parallel(jobs) if self.meta.parallel > 1 else self._run_inline(jobs)
        self._summary()
        if not interrupted and self.meta.reevaluate and len(self.meta.objectives) == 1:
            from metaexp.meta.reevaluation import reevaluate

            reevaluate(self.plan, self.study, self.ws.root, self.out)
        done = [t for t in self.study.get_trials(deepcopy=False) if t.state.is_finished()]
        return MetaResult(len(done), interrupted)

    def _check_config(self, resume: bool) -> None:
        """The study's settings live in meta.json; a resumed study must not change them."""
        config = {
            "spec_tag": self.plan.spec.tag,
            "space": space_as_data(self.plan.space),
            "objectives": self.meta.objectives,
            "directions": self.plan.directions,
            "budget": self.plan.budget,
            "repeats": self.meta.repeats,
        }
        path = self.ws.out / "meta.json"
        started = bool(self.study.get_trials(deepcopy=False))
        if started and not resume:
            raise MetaexpError(
                f"meta study {self.plan.tag!r} already has trials: pass --resume to continue it, "
                "or set meta.tag to start another"
            )
        if started and path.exists():
            old = json.loads(path.read_text())
            changed = sorted(k for k in config if old.get(k) != config[k])
            if changed:
                raise MetaexpError(
                    f"meta study {self.plan.tag!r} was started with other {', '.join(changed)}; "
                    "resume it with the same settings, or set meta.tag to start another"
                )
        path.write_text(json.dumps(config, indent=1) + "\n")

    # --- trials

    def _jobs(self, redo: list[Any], fresh: int) -> Iterator[tuple[Any, TrialJob | None]]:
        """Outer trials to run, asked lazily so the sampler sees every finished one."""
        import optuna

        for frozen in redo:
            yield self._job(optuna.trial.Trial(self.study, frozen._trial_id), dict(frozen.params))
        for _ in range(fresh):
            trial = self.study.ask(self.dists)
            yield self._job(trial, trial.params)

    def _job(self, trial: optuna.Trial, params: dict[str, Any]) -> tuple[Any, TrialJob | None]:
        spec, r_count = self.plan.spec, self.meta.repeats
        try:
            specs = [
                sampled_spec(
                    spec,
                    params,
                    self.plan.inner_tag(trial.number, r),
                    spec.seed + trial.number * r_count + r,  # fresh seeds per trial: picks cannot fit one
                    self.plan.space_path,
                )
                for r in range(r_count)
            ]
        except SpecError as exc:
            self._fail(trial, str(exc))
            return trial, None
        pruner = self.meta.pruner_or_default
        job = TrialJob(
            number=trial.number,
            trial_id=trial._trial_id,
            specs=specs,
            study_name=self.plan.tag,
            storage=spec.storage,
            root=self.ws.root,
            prune=len(self.meta.objectives) == 1 and pruner.kind != "none",
            pruner=pruner.model_dump(),
            sign=1.0 if self.plan.directions[0] == spec.direction else -1.0,
            log=self.ws.out / "logs" / f"t{trial.number}.log",
        )
        trial.set_user_attr("tags", [s.tag for s in specs])
        return trial, job

    def _run_inline(self, jobs: Iterator[tuple[Any, TrialJob | None]]) -> bool:
        for trial, job in jobs:
            if job is None:
                continue
            try:
                runs = run_trial(job, self.study)
            except MetaexpError as exc:
                self._fail(trial, str(exc))
                continue
            if self._finish(trial, runs):
                return True
        return False

    def _run_parallel(self, jobs: Iterator[tuple[Any, TrialJob | None]]) -> bool:
        import ray

        from metaexp.run.cluster import RETRIES, connect

        connect(self.plan.spec.ray)
        # The task only drives an inner run: its harness runs (or Ray evaluations) take the CPUs.
        # A task whose worker or node dies runs again (its inner runs resume from their ledgers).
        task = ray.remote(num_cpus=0, max_retries=RETRIES, retry_exceptions=False)(run_trial_in_worker)
        pending: dict[Any, Any] = {}
        exhausted = False
        try:
            while pending or not exhausted:
                while not exhausted and len(pending) < self.meta.parallel:
                    trial, job = next(jobs, (None, None))
                    exhausted = trial is None
                    if job is not None:
                        pending[task.remote(job)] = trial
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    trial = pending.pop(ref)
                    runs = self._collect(ref, trial)
                    if runs is not None and self._finish(trial, runs):
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            print("interrupted: outer trials in flight stay RUNNING; --resume redoes them", file=self.out)
            return True
        return False

    def _collect(self, ref: Any, trial: Any) -> list[InnerRun] | None:
        """A finished task's inner runs, or None when the trial failed (told FAIL: the study goes on)."""
        import ray

        from metaexp.run.cluster import RETRIES

        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            self._fail(trial, str(exc.cause if exc.cause is not None else exc)[-2000:])
        except ray.exceptions.RayError as exc:  # its worker died on every try
            self._fail(trial, f"its worker died on each of {RETRIES + 1} tries: {type(exc).__name__}")
        return None

    def _finish(self, trial: Any, runs: list[InnerRun]) -> bool:
        """Tell the outer trial's state and values. True: an inner run was interrupted (stop the study)."""
        from optuna.trial import TrialState

        last = runs[-1]
        trial.set_user_attr("experiments", sum(r.experiments for r in runs))
        trial.set_user_attr("stop", [r.stop_reason for r in runs])
        if last.interrupted:
            return True
        if last.pruned:
            self.study.tell(trial, state=TrialState.PRUNED)
            self._line(trial, "PRUNED", last.stop_reason, runs)
            return False
        if not last.curve:
            self._fail(trial, f"inner run {last.tag} produced no value: {last.stop_reason}")
            return False
        values = objective_values(runs, list(self.meta.objectives), self.plan.budget, reached_test(self.plan))
        self.study.tell(trial, values)
        shown = ", ".join(f"{o}={v:.6g}" for o, v in zip(self.meta.objectives, values, strict=True))
        self._line(trial, "COMPLETE", shown, runs)
        return False

    def _fail(self, trial: Any, message: str) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("error", message[-2000:])
        self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        print(f"outer trial {trial.number}: FAIL {message}", file=self.out)

    def _line(self, trial: Any, state: str, what: str, runs: list[InnerRun]) -> None:
        params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        spent = sum(r.experiments for r in runs)
        print(f"outer trial {trial.number}: {state} {what} ({spent} experiments) [{params}]", file=self.out)

    def _summary(self) -> None:
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        counts = {
            s.name: sum(t.state == s for t in trials) for s in TrialState if any(t.state == s for t in trials)
        }
        spent = sum(int(t.user_attrs.get("experiments", 0)) for t in trials)
        print(f"meta study {self.plan.tag}: {counts}; {spent} inner experiments", file=self.out)
        if len(self.meta.objectives) == 1 and counts.get("COMPLETE"):
            best = self.study.best_trial
            print(
                f"best: trial {best.number} {self.meta.objectives[0]}={best.value:.6g} {best.params}",
                file=self.out,
            )


def _create_study(plan: MetaPlan, root: Path) -> optuna.Study:
    import optuna

    from metaexp.record.storage import make_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    meta = plan.meta
    sampler = (
        optuna.samplers.TPESampler(seed=meta.seed)
        if meta.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=meta.seed)
    )
    study = optuna.create_study(
        storage=make_storage(plan.spec.storage, root),
        study_name=plan.tag,
        directions=plan.directions,
        sampler=sampler,
        pruner=make_pruner(meta.pruner_or_default, plan.budget, meta.repeats),
        load_if_exists=True,
    )
    with warnings.catch_warnings():  # experimental in Optuna 5, and the names are worth having
        warnings.simplefilter("ignore")
        study.set_metric_names(list(meta.objectives))
    return study


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
