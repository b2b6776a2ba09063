"""Pipeline runs: stages in order, each from the previous stage's best commit.

A stage is an ordinary run with its own tag (`<tag>-<stage>`), target, objective
and budget (spec.stage_spec); the targets of earlier stages are frozen, so an
edit to them is rejected with the stage that owns them. Running the pipeline
again resumes: a finished stage stops at once on its budget, and the next one
starts (or resumes) from its best.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from metaexp.errors import MetaexpError
from metaexp.record import refs
from metaexp.record.records import read_records
from metaexp.run.budget import OnRecord, RunResult
from metaexp.spec import Spec, stage_spec

if TYPE_CHECKING:
    from metaexp.run import Scheduler


def stages(spec: Spec) -> list[Spec]:
    """Every stage's spec as far as it can be known now: a stage whose predecessor has no
    best yet starts from the spec's start (it is only run once that best exists)."""
    assert spec.pipeline is not None
    out: list[Spec] = []
    start = spec.start
    for i in range(len(spec.pipeline)):
        stage = stage_spec(spec, i, start)
        out.append(stage)
        best = best_commit(stage)
        start = best or start
    return out


def best_commit(spec: Spec) -> str | None:
    return refs.best_commit(read_records(spec.root / ".metaexp" / spec.tag / "experiments.jsonl"))


def run_pipeline(
    spec: Spec,
    out: TextIO = sys.stderr,
    on_record: OnRecord | None = None,
    scheduler: Scheduler | None = None,
) -> RunResult:
    from metaexp.run import run

    assert spec.pipeline is not None
    start = spec.start
    result: RunResult | None = None
    for i, stage in enumerate(spec.pipeline):
        sub = stage_spec(spec, i, start)
        frozen = f"; frozen: {', '.join(sorted(sub.frozen))}" if sub.frozen else ""
        print(
            f"== pipeline stage {i + 1}/{len(spec.pipeline)}: {stage.name} (tag {sub.tag}, "
            f"target {', '.join(sub.target)}, from {start[:12]}{frozen})",
            file=out,
        )
        result = run(sub, out, on_record, scheduler)
        if result.aborted or result.interrupted:
            print(f"== pipeline stopped in stage {stage.name}: {result.stop_reason}", file=out)
            return result
        best = best_commit(sub)
        if best is None:
            raise MetaexpError(f"pipeline stage {stage.name!r} ended without a best commit; see its log")
        start = best
    assert result is not None
    return result
