"""The cascade: cheap stages run before the full harness, in the same sandbox (OpenEvolve's cascade,
seed 004's proxy metric). A candidate that fails one is not run in full; its outcome names the stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from metaexp.evaluate.metrics import parse_metrics
from metaexp.evaluate.program import Outcome, Ran, run_program
from metaexp.evaluate.sandbox import BaseTree
from metaexp.record.records import Status
from metaexp.spec import CascadeStageSpec, MetricSpec, Spec

Stages = list[dict[str, object]]  # per stage run: its name, seconds, whether it passed, its metric


def run_cascade(
    spec: Spec, base: BaseTree, cwd: Path, env: Mapping[str, str], log: Path
) -> tuple[Stages, Outcome | None]:
    """The stages in order, each logging to <log>.<stage>.log; the outcome of the one that stopped
    the candidate, or None when every stage passed."""
    stages: Stages = []
    for stage in spec.harness.cascade:
        stage_env = {**env, "METAEXP_CASCADE_STAGE": stage.name}
        ran = run_program(spec, stage, base, cwd, stage_env, log.with_name(f"{log.stem}.{stage.name}.log"))
        info: dict[str, object] = {"stage": stage.name, "harness_s": round(ran.seconds, 4), "passed": False}
        stages.append(info)
        stopped = _verdict(spec, stage, ran, info, seconds(stages))
        if stopped is not None:
            return stages, Outcome(stopped[0], {}, seconds(stages), stopped[1], ran.tail, cascade=stages)
        info["passed"] = True
    return stages, None


def seconds(stages: Stages) -> float:
    return sum(float(s["harness_s"]) for s in stages)  # type: ignore[arg-type]


def _verdict(
    spec: Spec, stage: CascadeStageSpec, ran: Ran, info: dict[str, object], spent: float
) -> tuple[Status, str] | None:
    """Why the stage stops the candidate (its failure, a missing metric, a threshold), or None."""
    where = f"cascade stage {stage.name!r}"
    if ran.failure is not None:
        return ran.failure[0], f"{where}: {ran.failure[1]}"
    if not stage.metric:
        return None
    found, problem = parse_metrics(ran.output, {stage.metric: spec.metrics.get(stage.metric, MetricSpec())})
    if problem:
        return Status.CRASH, f"{where}: {problem}"
    value = found[stage.metric]
    info["metrics"] = found
    if stage.min is not None and value < stage.min:
        bound = f"below min {stage.min:g}"
    elif stage.max is not None and value > stage.max:
        bound = f"above max {stage.max:g}"
    else:
        return None
    return Status.DISCARD, f"{where}: {stage.metric}={value:.6g} {bound}, not run in full"
