"""Evaluate one candidate: a sandbox tree, the harness (its cascade first) under its limits, its
metrics; and the held-out validation harness on a new best.

A failing harness is data, never an exception: it comes back as an Outcome with status crash or
timeout, a reason and the log's tail (metaexp/evaluate/program.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from metaexp.evaluate.cascade import run_cascade, seconds
from metaexp.evaluate.environment import harness_env
from metaexp.evaluate.metrics import parse_metrics
from metaexp.evaluate.program import Interrupted, Outcome, binds_base, run_program
from metaexp.evaluate.sandbox import BaseTree
from metaexp.record.records import Status
from metaexp.spec import Spec

__all__ = ["Interrupted", "Outcome", "evaluate", "harness_env", "precheck", "validate"]


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
    `cascade`: run the spec's cheap stages first (metaexp/evaluate/cascade.py)."""
    box = base.sandbox(files, bound=binds_base(spec))
    env = {**harness_env(spec, n, seed=seed), **(extra_env or {})}
    try:
        stages, stopped = run_cascade(spec, base, box, env, log_path) if cascade else ([], None)
        if stopped is not None:
            return stopped
        ran = run_program(spec, spec.harness, base, box, env, log_path)
    finally:
        base.release(box)
    spent = ran.seconds + seconds(stages)
    if ran.failure is not None:
        return Outcome(
            ran.failure[0], harness_s=spent, reason=ran.failure[1], log_tail=ran.tail, cascade=stages
        )
    metrics, problem = parse_metrics(ran.output, spec.metrics)
    if problem:
        return Outcome(Status.CRASH, metrics, spent, problem, ran.tail, cascade=stages)
    return Outcome(None, metrics, spent, "", ran.tail, cascade=stages)


def precheck(
    spec: Spec,
    base: BaseTree,
    n: int,
    files: Mapping[str, bytes],
    log_path: Path,
    extra_env: Mapping[str, str] | None = None,
) -> Outcome | None:
    """`harness.precheck` on a candidate, before any harness run: the `invalid` outcome of a
    failure (its last line in the reason), None when it passes."""
    check = spec.harness.precheck
    assert check is not None
    box = base.sandbox(files, bound=binds_base(spec))
    try:
        env = {**harness_env(spec, n), "METAEXP_PRECHECK": "1", **(extra_env or {})}
        ran = run_program(spec, check, base, box, env, log_path)
    finally:
        base.release(box)
    if ran.failure is None:
        return None
    last = (ran.tail.strip().splitlines() or [""])[-1][:200]
    reason = f"precheck failed ({ran.failure[1]})" + (f": {last}" if last else "")
    return Outcome(Status.INVALID, {}, ran.seconds, reason, ran.tail)


def validate(
    spec: Spec, base: BaseTree, n: int, files: Mapping[str, bytes], log_path: Path
) -> dict[str, object]:
    """Run the held-out validation harness on `files`: {"metrics": ...} or {"error": why}.

    It never decides anything; a failing run is recorded, not fatal."""
    held_out = spec.harness.validation
    assert held_out is not None
    box = base.sandbox(files, bound=binds_base(spec))
    try:
        env = {**harness_env(spec, n), "METAEXP_VALIDATION": "1"}
        ran = run_program(spec, held_out, base, box, env, log_path)
    finally:
        base.release(box)
    spent = round(ran.seconds, 4)
    if ran.failure is not None:
        return {"error": ran.failure[1], "harness_s": spent}
    metrics, problem = parse_metrics(ran.output, held_out.metric_specs)
    if problem:
        return {"error": problem, "metrics": metrics, "harness_s": spent}
    return {"metrics": metrics, "harness_s": spent}
