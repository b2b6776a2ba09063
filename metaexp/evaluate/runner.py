"""One runner for every evaluation of a candidate, in this process or inside a Ray task.

A plain run (its cascade stages first), a noisy candidate's paired test against its parent
(metaexp/evaluate/repeats.py), a hybrid candidate's tuning (metaexp/operators/tuning.py): each is
a series of harness runs of the one experiment, on the seeds and files the job names, and comes
back as one Evaluation. In the driver's process the logs are written where they are kept
(logs/<n>.log, and logs/<n>.<run>.log beside it), so a user can follow them live; on a worker they
go to a folder of its own and come back as tails, which the driver writes under the experiment's
number once it is recorded.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaexp.evaluate.harness import Outcome, evaluate, precheck, validate
from metaexp.evaluate.program import read_end

if TYPE_CHECKING:
    from metaexp.candidate import Candidate
    from metaexp.evaluate.repeats import Measured
    from metaexp.evaluate.sandbox import BaseTree
    from metaexp.spec import Spec

LOG_KEEP_BYTES = 1 << 20  # the last MiB of each harness log is kept (logs/<n>.log, logs/<n>.<run>.log)
MAIN = "run"  # the stem of a job's logs in its directory: run.log, run.<name>.log
PROBE = "probe"  # a crash streak's probe: the failed candidate's parent, run again (logs/<n>.probe.log)
PROBED = {True: "probe: the parent runs", False: "probe: the parent fails too"}  # a probed reason ends so


@dataclass(frozen=True)
class Job:
    """What one evaluation needs beside the spec and the base; it travels to a worker as it is."""

    cand: Candidate
    label: int  # METAEXP_EXPERIMENT
    env: dict[str, str] = field(default_factory=dict)  # more variables, e.g. METAEXP_ISLAND
    noise: dict[str, Any] | None = None  # the paired test against the parent (ParentTests.payload)
    tune_budget: int = 0  # hybrid: tuning runs, the candidate's own values first (cand.tune is set)
    probe: bool = False  # if it crashes or times out, run its parent once more (a crash streak's probe)


@dataclass(frozen=True)
class Evaluation:
    outcome: Outcome  # the candidate's metrics (a noisy test's means, tuning's best run) or its failure
    logs: dict[str, str]  # from a worker: "" -> the main log's tail, NAME -> run NAME's (a repeat, a stage)
    node: str = ""  # the Ray node it ran on ("" in this process)
    test: Measured | None = None  # noise: the paired test's verdict, runs and the parent's new runs
    tuned: Candidate | None = None  # hybrid: the candidate as tuning left it (its best run's values)
    probe: Outcome | None = None  # the parent run again after this candidate failed (Job.probe)
    lost: bool = False  # Ray could not bring it back: nothing ran that tells the harness from the change


def run_job(spec: Spec, base: BaseTree, job: Job, log: Path | None = None) -> Evaluation:
    """Every harness run of one job; never raises for a failing harness (Interrupted aside).
    `log`: the main log's path, kept there; without it the logs come back as tails."""
    if log is not None:
        return _run(spec, base, job, log)
    with scratch("metaexp-eval-") as folder:
        evaluation = _run(spec, base, job, folder / f"{MAIN}.log")
        return replace(evaluation, logs=collect_logs(folder))


SCRATCH_PREFIXES = ("metaexp-eval-", "metaexp-validation-")
_OWNER = ".owner"  # locked (flock) while the folder's job runs: a folder whose lock is free is left over
_swept = False  # this process has removed the folders of jobs whose process died (once per process)


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A job's folder under the temporary directory, removed after it; one that a killed worker
    left (its owner lock free) is removed by the next process to run a job on the node."""
    global _swept
    if not _swept:
        _swept = True
        sweep_scratch()
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    owner = os.open(folder / f"{_OWNER}.new", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(owner, fcntl.LOCK_EX)
        os.rename(folder / f"{_OWNER}.new", folder / _OWNER)  # seen by a sweep only once it is locked
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(owner)


def sweep_scratch(root: Path | None = None) -> list[Path]:
    """Remove the job folders whose owner no longer holds their lock (its process died: a Ray worker
    killed mid-job cannot clean up); returns them. flock, not a PID: it holds across PID namespaces."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob("metaexp-*-*"):
        if not folder.name.startswith(SCRATCH_PREFIXES):
            continue
        try:
            owner = os.open(folder / _OWNER, os.O_RDWR)
        except OSError:
            continue  # not ours, or made before owner locks
        try:
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live job's
        finally:
            os.close(owner)  # (closing releases a lock we took)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _run(spec: Spec, base: BaseTree, job: Job, log: Path) -> Evaluation:
    if spec.harness.precheck is not None and job.cand.kind != "baseline":
        check_log = log.with_name(f"{log.stem}.precheck.log")
        failed = precheck(spec, base, job.label, job.cand.tree, check_log, job.env)
        if failed is not None:  # invalid: no harness run, no tuning, no paired test
            return Evaluation(failed, {})
    run = _runner(spec, base, job.label, log, job.env)
    test = tuned = None
    if job.cand.tune is not None:
        tuned, outcome = _tune(spec, job, run)
    elif job.noise is not None:
        test = _measure(spec, job, run)
        outcome = test.outcome
    else:
        outcome = run(job.cand.tree, spec.seed, "")
    probe = None
    if job.probe and outcome.status is not None and outcome.status.failed and job.cand.kind != "baseline":
        probe = run(job.cand.parent_files, spec.seed, PROBE)  # the harness, or the change?
        outcome = replace(outcome, reason=f"{outcome.reason}; {PROBED[probe.status is None]}")
    return Evaluation(outcome, {}, test=test, tuned=tuned, probe=probe)


def run_validation(
    spec: Spec, base: BaseTree, tree: Mapping[str, bytes], label: int, log: Path | None = None
) -> tuple[dict[str, object], str]:
    """The held-out validation harness on a new best: ({"metrics"} or {"error"}, its log's tail,
    "" when it was written to `log`)."""
    if log is not None:
        return validate(spec, base, label, tree, log), ""
    with scratch("metaexp-validation-") as folder:
        result = validate(spec, base, label, tree, folder / f"{MAIN}.log")
        return result, collect_logs(folder).get("", "")


def collect_logs(folder: Path) -> dict[str, str]:
    """The tails of a job's logs by name: "" for run.log, NAME for run.NAME.log."""
    logs: dict[str, str] = {}
    for path in sorted(folder.glob(f"{MAIN}*.log")):
        name = path.name.removeprefix(MAIN).removesuffix(".log").removeprefix(".")
        logs[name] = read_end(path, LOG_KEEP_BYTES)
    return logs


def _runner(spec: Spec, base: BaseTree, label: int, log: Path, env: dict[str, str]) -> Any:
    """One harness run per (tree, seed, name): the first ("" or "0") runs the cascade first and logs
    to `log`, run NAME to <log>.NAME.log."""

    def run(tree: Mapping[str, bytes], seed: int, name: str) -> Outcome:
        first = name in ("", "0")
        path = log if first else log.with_name(f"{log.stem}.{name}.log")
        cascade = first or name == PROBE  # a probe runs the parent as a candidate runs: stages first
        return evaluate(spec, base, label, tree, path, extra_env=env, seed=seed, cascade=cascade)

    return run


def _measure(spec: Spec, job: Job, run: Any) -> Measured:
    """The paired test of the candidate against its parent, the driver's cache of the parent's
    per-seed values first (its new runs come back in the test's incumbent_runs)."""
    from metaexp.decide.objectives import Objective
    from metaexp.evaluate.repeats import Repeater

    noise = job.noise
    assert noise is not None
    repeater = Repeater(spec, Objective.of(spec))
    for seed, value in noise["cached"].items():
        repeater.cache.put(noise["parent"], int(seed), float(value))
    parent_files = job.cand.parent_files
    return repeater.measure(
        run, job.cand.tree, noise["parent"], parent_files, noise["block"], noise["confirm_block"]
    )


def _tune(spec: Spec, job: Job, run: Any) -> tuple[Candidate, Outcome]:
    from metaexp.decide.objectives import Objective
    from metaexp.operators.tuning import tune

    cand = job.cand
    return tune(cand, cand.parent_files, run, Objective.of(spec), spec.seed, job.tune_budget)
