"""The ordered scheduler (`ray.schedule: ordered`): parallel evaluations, deterministic records.

Up to `ray.max_concurrent_evals` evaluations run at once as Ray tasks, but everything else happens
in one fixed order: lineages are asked in turn, each answer is awaited before the next step, and
evaluations are recorded in the order they were asked. So what each lineage knows when it proposes,
and hence every record, depends on the spec and its seed only, not on which evaluation finishes
first, how many workers Ray has or how loaded the machine is. With one slot it records what the
serial scheduler records. The price is throughput: a slow evaluation holds back the records after
it (the async scheduler, run/parallel.py, never waits). `metaexp study` and `metaexp meta` use it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from metaexp.candidate import Candidate
from metaexp.evaluate.harness import Outcome
from metaexp.evaluate.runner import Evaluation
from metaexp.record.records import Status
from metaexp.run.actors import Actors, evaluation_failed, said
from metaexp.run.budget import INTERRUPTED
from metaexp.run.core import Core
from metaexp.run.recording import Flight


class Ordered:
    def __init__(self, core: Core) -> None:
        import ray

        from metaexp.run.cluster import remote_tasks

        self.core, self.session, self.spec = core, core.session, core.spec
        self.slots = self.spec.ray.max_concurrent_evals
        self.base_ref = ray.put(self.session.base.tar)
        self.evaluate, self.validate = remote_tasks(self.spec.ray.eval_resources)
        self.window: deque[tuple[Flight, Any]] = deque()  # (flight, its evaluation) in the order asked
        self.actors = Actors(core, self._in_flight_of)
        self._next = 0  # the lineage asked next

    def drive(self) -> str:
        import ray

        stopping = self.session.stopping
        reason, clean = None, False
        with stopping.ctrl_c():
            try:
                if not self.session.records:
                    self._baseline()
                if self.session.tally.counts.get("keep"):
                    self.actors.spawn_all()
                while True:
                    reason = stopping.reason(len(self.window))
                    if reason is None:
                        self._top_up()
                    if not self.window:
                        break
                    self._record_first()  # what is in flight is recorded, in order, even when stopping
                clean = True  # nothing in flight: the lineages' hosts can serve the next run
            except KeyboardInterrupt:
                for _flight, ref in self.window:
                    ray.cancel(ref, force=True)
                reason = INTERRUPTED
            except ray.exceptions.RayError as exc:
                reason = f"abort: Ray failed ({said(exc)}); run it again to resume"
            finally:
                self.actors.finish(clean)
        return reason or stopping.reason() or "done"

    def _baseline(self) -> None:
        flight = self.core.prepare(self.core.baseline())
        assert flight is not None
        self.window.append((flight, self._submit(flight)))
        self._record_first()

    def _top_up(self) -> None:
        """Ask lineages in turn until the window is full (an answer recorded at once, a duplicate
        say, frees its place for the next)."""
        stopping = self.session.stopping
        while len(self.window) < self.slots and stopping.reason(len(self.window)) is None:
            k, self._next = self._next, (self._next + 1) % self.actors.k
            cand = self._ask(k)
            if cand is None:
                return  # the lineage keeps dying: the run stops (stopping.halt says why)
            flight = self.core.prepare(cand)
            if flight is not None:
                self.window.append((flight, self._submit(flight)))

    def _ask(self, k: int) -> Candidate | None:
        import ray

        while not self.session.stopping.halt:
            try:
                cand = ray.get(self.actors.ask(k))
            except ray.exceptions.RayActorError as exc:
                self.actors.lost(k, exc)
                continue
            self.actors.answered(k)
            return cand
        return None

    def _submit(self, flight: Flight) -> Any:
        job = self.core.job(flight)
        return self.evaluate.remote(self.spec, self.session.base.key, self.base_ref, job)

    def _record_first(self) -> None:
        import ray

        flight, ref = self.window.popleft()
        try:
            evaluation = ray.get(ref)
        except ray.exceptions.RayError as exc:
            evaluation = Evaluation(Outcome(Status.CRASH, reason=evaluation_failed(exc)), {}, lost=True)
        if self.core.evaluated(flight, evaluation):
            self.session.progress.note(f"a new best from island {flight.cand.lineage}; validating it")
            label = self.core.job(flight).label
            task = self.validate.remote(
                self.spec, self.session.base.key, self.base_ref, flight.cand.tree, label
            )
            try:
                self.core.validated(flight, *ray.get(task))
            except ray.exceptions.RayError as exc:
                self.core.validated(flight, {"error": evaluation_failed(exc)}, "")
        self.core.record(flight)

    def _in_flight_of(self, k: int) -> list[Candidate]:
        return [flight.cand for flight, _ref in self.window if flight.cand.lineage == k]
