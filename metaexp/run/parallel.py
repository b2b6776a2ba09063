"""The parallel scheduler: lineages as Ray actors, evaluations and validations as Ray tasks.

The driver keeps up to `ray.max_concurrent_evals` evaluations in flight and, per island, one
proposal ready beyond its share of the slots, so a freed slot gets its next candidate without
waiting for an island. A single lineage's ratchet has one experiment in flight at a time, so it
proposes what the serial scheduler would. Everything the driver waits on is a future in one
`ray.wait`: proposals, evaluations, validations. The steps themselves are the core's.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from metaexp.candidate import Candidate
from metaexp.evaluate.harness import Outcome
from metaexp.evaluate.runner import Evaluation
from metaexp.record.records import Status
from metaexp.run.budget import INTERRUPTED
from metaexp.run.core import Core
from metaexp.run.recording import Flight

POLL_S = 0.5  # how long one wait for a finished future may block


@dataclass
class _Pending:
    stage: str  # ask | evaluate | validate
    lineage: int
    epoch: int  # the lineage's incarnation it belongs to: work of a dead one is dropped
    flight: Flight | None = None


class Parallel:
    def __init__(self, core: Core) -> None:
        import ray

        from metaexp.run.cluster import remote_tasks

        self.core, self.session, self.spec = core, core.session, core.spec
        self.k = self.spec.strategy.island_count
        self.slots = self.spec.ray.max_concurrent_evals
        self.base_ref = ray.put(self.session.base.tar)
        self.evaluate, self.validate = remote_tasks(self.spec.ray.eval_resources)
        self.actors: list[Any] = []
        self.epochs = [0] * self.k
        self.pending: dict[Any, _Pending] = {}
        self.ready: deque[tuple[Flight, int]] = deque()  # prepared, waiting for a slot (with epoch)
        core.tell = self._tell

    # --- the schedule

    def drive(self) -> str:
        import ray

        stopping = self.session.stopping
        reason = None
        with stopping.ctrl_c():
            try:
                self._start()
                while True:
                    reason = stopping.reason(
                        self._in_flight()
                    )  # again each time: an invalid proposal frees its slot
                    if reason is None:
                        self._fill()
                    elif stopping.stopping:
                        self._clear_ready()  # not yet started: proposed again on resume
                    else:
                        self._submit()  # counted against the budget already: they run
                    if not self.pending:
                        break
                    done, _ = ray.wait(list(self.pending), num_returns=1, timeout=POLL_S)
                    for ref in done:
                        self._advance(ref, self.pending.pop(ref))
            except KeyboardInterrupt:
                for ref in self.pending:
                    ray.cancel(ref, force=True)
                reason = INTERRUPTED
            finally:
                for actor in self.actors:
                    ray.kill(actor)
        return reason or stopping.reason() or "done"

    def _start(self) -> None:
        if self.session.records:
            self._spawn_all()
            return
        flight = self.core.prepare(self.core.baseline())
        assert flight is not None
        self.ready.append((flight, 0))

    def _in_flight(self) -> int:
        return len(self.pending) + len(self.ready)

    def _fill(self) -> None:
        """Start evaluations up to the slots, then ask each lineage for its share of proposals."""
        self._submit()
        if not self.actors:
            return
        busy = [0] * self.k
        for pending in self.pending.values():
            busy[pending.lineage] += 1
        for flight, _epoch in self.ready:
            busy[flight.cand.lineage] += 1
        ratchet = not self.spec.strategy.is_population
        share = 1 if ratchet else max(1, -(-self.slots // self.k)) + 1  # its share of the slots, one ahead
        for k in sorted(range(self.k), key=lambda i: busy[i]):
            while (
                self._in_flight() < self.slots + self.k
                and busy[k] < share
                and self.session.stopping.reason(self._in_flight()) is None
            ):
                ref = self.actors[k].ask.remote(self.core.donor(k))
                self.pending[ref] = _Pending("ask", k, self.epochs[k])
                busy[k] += 1

    def _submit(self) -> None:
        if self.session.stopping.stopping:
            return  # nothing new starts; what waits is proposed again on resume
        evaluating = sum(1 for p in self.pending.values() if p.stage == "evaluate")
        while self.ready and evaluating < self.slots:
            flight, epoch = self.ready.popleft()
            k = flight.cand.lineage
            if flight.cand.kind != "baseline" and epoch != self.epochs[k]:
                self.core.forget(flight)  # proposed by a lineage that died since: it proposes again
                continue
            job = self.core.job(flight)
            ref = self.evaluate.remote(self.spec, self.session.base.key, self.base_ref, job)
            self.pending[ref] = _Pending("evaluate", k, epoch, flight)
            evaluating += 1

    def _clear_ready(self) -> None:
        while self.ready:
            self.core.forget(self.ready.popleft()[0])

    # --- one finished future

    def _advance(self, ref: Any, pending: _Pending) -> None:
        import ray

        k, flight = pending.lineage, pending.flight
        baseline = flight is not None and flight.cand.kind == "baseline"
        if pending.epoch != self.epochs[k] and not baseline:
            if flight is not None:
                self.core.forget(flight)  # started by a lineage that died since; its rebuilt self asks again
            return
        try:
            value = ray.get(ref)
        except ray.exceptions.RayActorError:
            return self._rebuild(k)
        except ray.exceptions.RayError as exc:  # the evaluation's worker died
            if pending.stage == "ask":
                raise
            value = _worker_died(pending.stage, exc)
        if pending.stage == "ask":
            self._asked(value, pending.epoch)
        elif pending.stage == "evaluate":
            self._evaluated(pending, value)
        else:
            assert flight is not None
            self.core.validated(flight, *value)
            self._record(flight)

    def _asked(self, cand: Candidate, epoch: int) -> None:
        flight = self.core.prepare(cand)
        if flight is not None:
            self.ready.append((flight, epoch))
            self._submit()

    def _evaluated(self, pending: _Pending, evaluation: Evaluation) -> None:
        flight = pending.flight
        assert flight is not None
        needs_validation = self.core.evaluated(flight, evaluation)
        self._submit()  # the slot is free: the next candidate starts before this one is recorded
        if not needs_validation:
            return self._record(flight)
        self.session.progress.note(
            f"a new best from island {flight.cand.lineage}; running the held-out validation harness"
        )
        label = self.core.job(flight).label
        ref = self.validate.remote(self.spec, self.session.base.key, self.base_ref, flight.cand.tree, label)
        self.pending[ref] = _Pending("validate", pending.lineage, pending.epoch, flight)

    def _record(self, flight: Flight) -> None:
        self.core.record(flight)
        if flight.cand.kind == "baseline" and self.session.tally.counts.get("keep"):
            self._spawn_all()

    # --- lineages

    def _spawn_all(self) -> None:
        self.actors = [self._spawn(k) for k in range(self.k)]

    def _spawn(self, k: int) -> Any:
        from metaexp.run.cluster import lineage_actor

        core = self.core
        epoch = self.epochs[k]
        name = f"metaexp:{self.spec.tag}:island-{k}" + (f":{epoch}" if epoch else "")
        plan, files, out = core.lineage_plan(k), core.lineage_files(k), core.lineage_out(k)
        return lineage_actor(name).remote(k, plan, self.session.records, files, out)

    def _rebuild(self, k: int) -> None:
        self.epochs[k] += 1
        self.actors[k] = self._spawn(k)  # rebuilt from the records
        self.session.progress.note(f"island {k} died; rebuilt from the records")

    def _tell(self, k: int, rec: Any, tree: Any) -> None:
        if self.actors:
            self.actors[k].tell.remote(rec, tree)


def _worker_died(stage: str, exc: Exception) -> Any:
    why = f"the evaluation's worker died: {type(exc).__name__}"
    if stage == "validate":
        return {"error": why}, ""
    return Evaluation(Outcome(Status.CRASH, reason=why), {})
