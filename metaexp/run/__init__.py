"""Running experiments: lineages ask, a scheduler drives the core's steps, the session records.

`run(spec)` is the one entry point (the CLI, pipelines, studies and meta trials all call it). A
single lineage runs serially in this process; a population runs its lineages as Ray actors and its
evaluations as Ray tasks. Both schedulers call the same steps (metaexp/run/core.py), so the records
a spec produces do not depend on the scheduler; `scheduler=` picks one explicitly (a single lineage
on a Ray cluster's GPU nodes, say).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Literal, TextIO

from metaexp.api import callable_package
from metaexp.run.budget import OnRecord, RunResult, Tally
from metaexp.spec import Spec

if TYPE_CHECKING:
    from metaexp.run.core import Core

Scheduler = Literal["serial", "parallel"]

__all__ = ["OnRecord", "RunResult", "Scheduler", "Tally", "run", "scheduler_for"]


def scheduler_for(spec: Spec) -> Scheduler:
    """Serial for a single lineage, and for a population whose ordered schedule evaluates one at a
    time on a local Ray: the serial scheduler records exactly what that would (lineages in turn,
    each evaluation awaited; tests/run/test_schedulers.py), without Ray's processes. Parallel (Ray)
    for any other population, and for any run on a Ray cluster named by ray.address."""
    ray = spec.ray
    if not spec.strategy.is_population:
        return "serial"
    one_at_a_time = ray.schedule == "ordered" and ray.max_concurrent_evals == 1
    return "serial" if one_at_a_time and ray.address is None else "parallel"


def run(
    spec: Spec,
    out: TextIO = sys.stderr,
    on_record: OnRecord | None = None,
    scheduler: Scheduler | None = None,
) -> RunResult:
    """Run (or resume) the spec's experiments until its budget, Ctrl-C or `on_record` stops them.
    A pipeline runs its stages in order (metaexp/run/pipeline.py)."""
    if spec.pipeline:
        from metaexp.run.pipeline import run_pipeline

        return run_pipeline(spec, out, on_record, scheduler)
    from metaexp.evaluate.cgroups import describe
    from metaexp.evaluate.isolation import check_local_gpus, isolation_for
    from metaexp.run.core import Core
    from metaexp.run.session import Session

    chosen = scheduler or scheduler_for(spec)
    if chosen == "serial":  # it evaluates here, not on Ray (which checks a cluster's resources)
        check_local_gpus(spec.ray.eval_resources)
    with Session(spec, out) as session:
        session.ws.stopped.unlink(missing_ok=True)  # while it runs, status shows no old stop
        core = Core(session, on_record)
        session.progress.start(resumed=session.tally.total)
        session.progress.note(isolation_for(spec.harness.sandbox, spec.harness.network).why)
        if limits := describe(spec.harness.memory_mb, spec.harness.cpus):
            session.progress.note(limits)
        reason = _drive(core, chosen)
        core.island_lines()
        session.progress.finish(reason)
        result = RunResult.of(reason, session.tally, session.ws.out)
        from metaexp.record.records import timestamp

        session.ws.stopped_at(reason, result.aborted, timestamp())
        return result


def _drive(core: Core, scheduler: Scheduler) -> str:
    if scheduler == "serial":
        from metaexp.run.serial import Serial

        return Serial(core).drive()
    from metaexp.run import hosts
    from metaexp.run.cluster import connect, warm_workers

    ray_spec = core.spec.ray
    connect(ray_spec)
    spec = core.spec  # the lineages' processes boot while the workers warm up
    warm_workers(
        ray_spec.eval_resources,
        ray_spec.max_concurrent_evals,
        lambda: hosts.reserve(spec.tag, spec.strategy.island_count),
    )
    if ray_spec.schedule == "ordered":
        from metaexp.run.ordered import Ordered

        return Ordered(core).drive()
    from metaexp.run.parallel import Parallel

    return Parallel(core).drive()


callable_package(__name__)  # metaexp.run(...) calls metaexp.api.run (see metaexp/api.py)
