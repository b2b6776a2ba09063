"""Evaluate one candidate: a sandbox tree, the harness under its limits, its metrics.

A failing harness is data, never an exception: it comes back as an Outcome
with status crash or timeout, a reason and the log's tail.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from metaexp.evaluate.metrics import parse_metrics
from metaexp.evaluate.sandbox import BaseTree, discard
from metaexp.evaluate.supervisor import Supervised, supervise
from metaexp.record.records import Status
from metaexp.spec import CascadeStageSpec, MetricSpec, Spec

SECRET_PATTERNS = ("*_API_KEY", "*_TOKEN", "*_SECRET", "*_SECRET_KEY", "*PASSWORD*", "*_ACCESS_KEY")
TAIL_LINES = 40
TAIL_CHARS = 4000
MAX_LOG_READ = 8 * 2**20  # metrics are read from the last 8 MiB of a log


@dataclass(frozen=True)
class Outcome:
    status: Status | None  # None: ran and produced every metric
    metrics: dict[str, float] = field(default_factory=dict)
    harness_s: float = 0.0
    reason: str = ""
    log_tail: str = ""
    cascade: list[dict[str, object]] = field(default_factory=list)  # the cheap stages it ran first


class Interrupted(Exception):
    """The user aborted the harness with a second Ctrl-C."""


def is_secret(name: str, extra: list[str]) -> bool:
    upper = name.upper()
    return name in extra or any(fnmatch.fnmatchcase(upper, p) for p in SECRET_PATTERNS)


def harness_env(
    spec: Spec, n: int, base: Mapping[str, str] | None = None, seed: int | None = None
) -> dict[str, str]:
    """The parent environment less secrets (unless passed on purpose), plus METAEXP_*."""
    base = os.environ if base is None else base
    keep = set(spec.harness.pass_env)
    strip = [*spec.harness.strip_env, spec.operator.api_key_env]  # the operator's key, whatever its name
    env = {k: v for k, v in base.items() if k in keep or not is_secret(k, strip)}
    env.update(spec.harness.env)
    env["METAEXP_TIME_BUDGET"] = f"{spec.harness.time_budget_s:g}"
    env["METAEXP_SEED"] = str(spec.seed if seed is None else seed)
    env["METAEXP_EXPERIMENT"] = str(n)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep the sandbox (and any shared file) clean
    return env


def evaluate(
    spec: Spec,
    base: BaseTree,
    n: int,
    files: Mapping[str, bytes],
    log_path: Path,
    extra_env: Mapping[str, str] | None = None,
    seed: int | None = None,
    cascade: bool = False,
) -> Outcome:
    """Run the harness on a tree of `files` over the base; never raises for a failing harness.

    `cascade`: run the spec's cheap stages first, in the same sandbox; a candidate that
    fails one is not run in full (its Outcome names the stage).
    """
    box = base.sandbox(files)
    env = {**harness_env(spec, n, seed=seed), **(extra_env or {})}
    stages: list[dict[str, object]] = []
    try:
        for stage in spec.harness.cascade if cascade else []:
            stopped = _stage(spec, stage, base, str(box), env, log_path, stages)
            if stopped is not None:
                return stopped
        run = supervise(
            spec.harness.argv,
            cwd=str(box),
            env=env,
            log_path=str(log_path),
            timeout_s=spec.harness.timeout_s,
            grace_s=spec.harness.grace_s,
            memory_mb=spec.harness.memory_mb,
        )
    finally:
        discard(box)
    touched = base.restore_shared()
    output = _read_log(log_path)
    tail = _tail(output)
    if run.aborted:
        raise Interrupted
    seconds = run.seconds + sum(float(s["harness_s"]) for s in stages)  # type: ignore[arg-type]
    failure = _failure(run, spec, touched)
    if failure is not None:
        return Outcome(failure[0], harness_s=seconds, reason=failure[1], log_tail=tail, cascade=stages)
    metrics, problem = parse_metrics(output, spec.metrics)
    if problem:
        return Outcome(Status.CRASH, metrics, seconds, problem, tail, cascade=stages)
    return Outcome(None, metrics, seconds, "", tail, cascade=stages)


def validate(
    spec: Spec, base: BaseTree, n: int, files: Mapping[str, bytes], log_path: Path
) -> dict[str, object]:
    """Run the held-out validation harness on `files`: {"metrics": ...} or {"error": why}.

    It never decides anything; a failing run is recorded, not fatal."""
    held_out = spec.harness.validation
    assert held_out is not None
    box = base.sandbox(files)
    try:
        run = supervise(
            held_out.argv,
            cwd=str(box),
            env={**harness_env(spec, n), "METAEXP_VALIDATION": "1"},
            log_path=str(log_path),
            timeout_s=held_out.timeout_s,
            grace_s=spec.harness.grace_s,
            memory_mb=spec.harness.memory_mb,
        )
    finally:
        discard(box)
    touched = base.restore_shared()
    if run.aborted:
        raise Interrupted
    failure = _failure(run, spec, touched, held_out.timeout_s)
    if failure is not None:
        return {"error": failure[1], "harness_s": round(run.seconds, 4)}
    metrics, problem = parse_metrics(_read_log(log_path), held_out.metric_specs)
    if problem:
        return {"error": problem, "metrics": metrics, "harness_s": round(run.seconds, 4)}
    return {"metrics": metrics, "harness_s": round(run.seconds, 4)}


def stage_log(log_path: Path, name: str) -> Path:
    return log_path.with_name(f"{log_path.stem}.{name}{log_path.suffix}")


def _stage(
    spec: Spec,
    stage: CascadeStageSpec,
    base: BaseTree,
    cwd: str,
    env: dict[str, str],
    log_path: Path,
    stages: list[dict[str, object]],
) -> Outcome | None:
    """Run one cascade stage; the Outcome that stops the candidate, or None to go on."""
    log = stage_log(log_path, stage.name)
    run = supervise(
        stage.argv,
        cwd=cwd,
        env={**env, "METAEXP_CASCADE_STAGE": stage.name},
        log_path=str(log),
        timeout_s=stage.timeout_s,
        grace_s=spec.harness.grace_s,
        memory_mb=spec.harness.memory_mb,
    )
    touched = base.restore_shared()
    output = _read_log(log)
    if run.aborted:
        raise Interrupted
    info: dict[str, object] = {"stage": stage.name, "harness_s": round(run.seconds, 4), "passed": False}
    stages.append(info)
    seconds = sum(float(s["harness_s"]) for s in stages)  # type: ignore[arg-type]
    failure = _failure(run, spec, touched, stage.timeout_s)
    if failure is not None:
        why = f"cascade stage {stage.name!r}: {failure[1]}"
        return Outcome(failure[0], harness_s=seconds, reason=why, log_tail=_tail(output), cascade=stages)
    if stage.metric:
        found, problem = parse_metrics(output, {stage.metric: spec.metrics.get(stage.metric, MetricSpec())})
        if problem:
            why = f"cascade stage {stage.name!r}: {problem}"
            return Outcome(Status.CRASH, {}, seconds, why, _tail(output), cascade=stages)
        value = found[stage.metric]
        info["metrics"] = found
        bound = (
            f"below min {stage.min:g}"
            if stage.min is not None and value < stage.min
            else f"above max {stage.max:g}"
            if stage.max is not None and value > stage.max
            else ""
        )
        if bound:
            why = f"cascade stage {stage.name!r}: {stage.metric}={value:.6g} {bound}, not run in full"
            return Outcome(Status.DISCARD, {}, seconds, why, _tail(output), cascade=stages)
    info["passed"] = True
    return None


def _failure(
    run: Supervised, spec: Spec, touched: list[str], timeout_s: float | None = None
) -> tuple[Status, str] | None:
    """Why a finished run is not usable, whatever it printed."""
    if run.error:
        return Status.CRASH, run.error
    if run.timed_out:
        return Status.TIMEOUT, f"killed after timeout_s={timeout_s or spec.harness.timeout_s:g}"
    if run.memory_exceeded:
        return Status.CRASH, f"memory above memory_mb={spec.harness.memory_mb:g} (killed)"
    if touched:
        return Status.CRASH, f"the harness wrote to shared file(s) {', '.join(touched)} (restored)"
    code = run.returncode
    if code is not None and code < 0:
        return Status.CRASH, f"exit signal {-code}"
    if code != 0:
        return Status.CRASH, f"exit code {code}"
    return None


def _read_log(path: Path) -> str:
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - MAX_LOG_READ))
        return fh.read().decode(errors="replace")


def _tail(output: str) -> str:
    return "\n".join(output.splitlines()[-TAIL_LINES:])[-TAIL_CHARS:]
