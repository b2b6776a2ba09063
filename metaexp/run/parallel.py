"""The parallel scheduler: lineages as Ray actors, evaluations and validations as Ray tasks.

The driver keeps up to `ray.max_concurrent_evals` evaluations in flight and, per island, one
proposal ready beyond its share of the slots, so a freed slot gets its next candidate without
waiting for an island. A single lineage's ratchet has one experiment in flight at a time, so it
proposes what the serial scheduler would. Everything the driver waits on is a future in one
`ray.wait`: proposals, evaluations, validations. The steps themselves are the core's.

Faults: a lineage actor that dies is rebuilt (metaexp/run/actors.py); its candidates in flight go
on and are recorded once. An evaluation whose worker or node dies is retried by Ray on
another worker (cluster.RETRIES), then recorded as a crash; any other Ray failure stops the run
with one line, the records so far intact.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from metaexp.candidate import Candidate
from metaexp.evaluate.harness import Outcome
from metaexp.evaluate.runner import Evaluation
from metaexp.record.records import Status
from metaexp.run.actors import Actors, evaluation_failed, said
from metaexp.run.budget import INTERRUPTED
from metaexp.run.core import Core
from metaexp.run.recording import Flight

POLL_S = 0.5  # how long one wait for a finished future may block


@dataclass
class _Pending:
    stage: str  # ask | evaluate | validate
    lineage: int
    epoch: int = 0  # an ask's: the incarnation of the lineage it went to (a dead one's is dropped)
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
        self.pending: dict[Any, _Pending] = {}
        self.ready: deque[Flight] = deque()  # prepared, waiting for an evaluation slot
        self.actors = Actors(core, self._in_flight_of)

    # --- the schedule

    def drive(self) -> str:
        import ray

        stopping = self.session.stopping
        reason, clean = None, False
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
                clean = True  # nothing in flight: the lineages' hosts can serve the next run
            except KeyboardInterrupt:
                self._cancel()
                reason = INTERRUPTED
            except ray.exceptions.RayError as exc:  # Ray itself failed: the records so far stand
                self._cancel()
                reason = f"abort: Ray failed ({said(exc)}); run it again to resume"
            finally:
                self.actors.finish(clean)
        return reason or stopping.reason() or "done"

    def _start(self) -> None:
        if self.session.records:
            self.actors.spawn_all()
            return
        flight = self.core.prepare(self.core.baseline())
        assert flight is not None
        self.ready.append(flight)

    def _cancel(self) -> None:
        import ray

        for ref in self.pending:
            ray.cancel(ref, force=True)

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
        for flight in self.ready:
            busy[flight.cand.lineage] += 1
        ratchet = not self.spec.strategy.is_population
        share = 1 if ratchet else max(1, -(-self.slots // self.k)) + 1  # its share of the slots, one ahead
        for k in sorted(range(self.k), key=lambda i: busy[i]):
            while (
                self._in_flight() < self.slots + self.k
                and busy[k] < share
                and self.session.stopping.reason(self._in_flight()) is None
            ):
                self.pending[self.actors.ask(k)] = _Pending("ask", k, self.actors.epochs[k])
                busy[k] += 1

    def _submit(self) -> None:
        if self.session.stopping.stopping:
            return  # nothing new starts; what waits is proposed again on resume
        evaluating = sum(1 for p in self.pending.values() if p.stage == "evaluate")
        while self.ready and evaluating < self.slots:
            flight = self.ready.popleft()
            job = self.core.job(flight)
            ref = self.evaluate.remote(self.spec, self.session.base.key, self.base_ref, job)
            self.pending[ref] = _Pending("evaluate", flight.cand.lineage, flight=flight)
            evaluating += 1

    def _clear_ready(self) -> None:
        while self.ready:
            self.core.forget(self.ready.popleft())

    # --- one finished future

    def _advance(self, ref: Any, pending: _Pending) -> None:
        import ray

        if pending.stage == "ask" and pending.epoch != self.actors.epochs[pending.lineage]:
            return  # asked of a lineage that died since; its rebuilt self is asked again
        try:
            value = ray.get(ref)
        except ray.exceptions.RayError as exc:
            return self._failed(pending, exc)
        if pending.stage == "ask":
            self.actors.answered(pending.lineage)
            self._asked(value)
        elif pending.stage == "evaluate":
            self._evaluated(pending, value)
        else:
            assert pending.flight is not None
            self.core.validated(pending.flight, *value)
            self._record(pending.flight)

    def _failed(self, pending: _Pending, exc: Exception) -> None:
        """A lineage that died is rebuilt; an evaluation whose worker died on every try is a crash."""
        import ray

        if pending.stage == "ask":
            if isinstance(exc, ray.exceptions.RayActorError):
                return self.actors.lost(pending.lineage, exc)
            raise exc  # the lineage itself raised: a bug that asking again repeats
        assert pending.flight is not None
        why = evaluation_failed(exc)
        if pending.stage == "validate":
            self.core.validated(pending.flight, {"error": why}, "")
            return self._record(pending.flight)
        self._evaluated(pending, Evaluation(Outcome(Status.CRASH, reason=why), {}, lost=True))

    def _asked(self, cand: Candidate) -> None:
        flight = self.core.prepare(cand)
        if flight is not None:
            self.ready.append(flight)
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
        self.pending[ref] = _Pending("validate", pending.lineage, flight=flight)

    def _record(self, flight: Flight) -> None:
        self.core.record(flight)
        if flight.cand.kind == "baseline" and self.session.tally.counts.get("keep"):
            self.actors.spawn_all()

    def _in_flight_of(self, k: int) -> list[Candidate]:
        flights = [*self.ready, *(p.flight for p in self.pending.values() if p.flight is not None)]
        return [f.cand for f in flights if f.cand.lineage == k]
