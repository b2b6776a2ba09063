"""Population runs: island actors propose, Ray tasks evaluate, this driver schedules and records.

The driver is the one writer (DESIGN.md): it owns the ledger, makes every git
object (crossover merges included) and records every row. It keeps up to
`ray.max_concurrent_evals` evaluations in flight and never waits on one
island while another has work, so evaluation slots stay busy.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, TextIO

from metaexp.candidate import compose, diff_lines, fingerprint, line_count
from metaexp.decide.archives import HallOfFame
from metaexp.decide.objectives import Objective
from metaexp.decide.population import individual, replay, signs_of
from metaexp.errors import WorkspaceError
from metaexp.evaluate.harness import Outcome
from metaexp.evaluate.repeats import ParentTests
from metaexp.record.ledger import Ledger
from metaexp.record.records import ExperimentRecord, Status, read_records, timestamp
from metaexp.record.workspace import Workspace
from metaexp.run.island import Proposal
from metaexp.run.loop import OnRecord, RunResult, Tally, budget_stop
from metaexp.run.plan import Plan, make_plan
from metaexp.run.progress import Progress
from metaexp.spec import Spec

POLL_S = 0.5  # how long one wait for a finished future may block


@dataclass
class _Slot:
    stage: str  # propose | evaluate | conclude
    island: int
    proposal: Proposal | None = None
    commit: str | None = None
    outcome: Outcome | None = None
    log: str = ""
    node: str = ""
    started: float = 0.0
    epoch: int = 0  # the island's incarnation that proposed it; work of a dead one is dropped
    measured: dict[str, Any] | None = None  # a noisy harness's paired test (remote.measure)


class PopulationLoop:
    def __init__(self, spec: Spec, out: TextIO = sys.stderr, on_record: OnRecord | None = None) -> None:
        self.spec = spec
        self.objective = Objective.of(spec)
        self.out = out
        self.interrupts = 0
        self.on_record = on_record  # as Loop's: after each record, a reason to stop or None
        self.halt: str | None = None

    def run(self) -> RunResult:
        from metaexp.run.cluster import connect, warm_workers

        ws = Workspace(self.spec.root, self.spec.tag)
        ws.open()
        try:
            _refuse_single_branch(ws)
            history = read_records(ws.out / "experiments.jsonl")
            plan = make_plan(self.spec, start=history[0].commit if history else None)
            base = ws.prepare_base(plan.start, plan.listing, sorted(plan.target_files))
            ledger = Ledger(ws, self.spec, plan.space)
            records = ledger.open()
            connect(self.spec.ray)
            warm_workers(self.spec.ray.eval_resources, self.spec.ray.max_concurrent_evals)
            try:
                return _Driver(self, plan, ws, ledger, records, base).drive()
            finally:
                ledger.close()
        finally:
            ws.close()


class _Driver:
    def __init__(
        self,
        loop: PopulationLoop,
        plan: Plan,
        ws: Workspace,
        ledger: Ledger,
        records: list[ExperimentRecord],
        base: Any,
    ) -> None:
        import ray

        from metaexp.run.cluster import remote_evaluate

        self.loop, self.plan, self.ws, self.ledger, self.records = loop, plan, ws, ledger, records
        self.spec = plan.spec
        self.k = self.spec.strategy.island_count
        self.tally = Tally()
        for rec in records:
            self.tally.add(rec)
        self.progress = Progress(self.spec, loop.out, self.tally)
        self.base_key = base.key
        self.base_ref = ray.put(base._tar)
        self.evaluate = remote_evaluate(self.spec.ray.eval_resources)
        self.hof = HallOfFame(signs_of(self.spec), k=10)
        self.parents = ParentTests(self.k) if self.spec.noise.method != "none" else None
        for rec in records:
            self._learn(rec)
        self.seen: dict[str, int] = {}  # normalised target files -> the experiment that tried them
        self.evaluating: set[str] = set()  # ... and those being evaluated now
        for rec in records:
            self._remember(rec)
        self.pops = replay(self.spec, records, self.k)  # the driver's copy, for branches
        self.island_best = {k: top.commit for k, pop in enumerate(self.pops) if (top := pop.best())}
        self.islands: list[Any] = [None] * self.k
        self.epochs = [0] * self.k
        self.pending: dict[Any, _Slot] = {}
        self.ready: deque[_Slot] = deque()  # proposals waiting for an evaluation slot
        self.island_counts: dict[int, tuple[int, int]] = {}  # island -> (experiments, keeps)
        self.logbooks: dict[int, list[dict[str, float]]] = {}  # island -> statistics rows
        for rec in records[1:]:
            if rec.status.harness_ran:
                ran, kept = self.island_counts.get(rec.island, (0, 0))
                self.island_counts[rec.island] = (ran + 1, kept + (rec.status is Status.KEEP))
        self._mark = time.monotonic()

    # --- the schedule

    def drive(self) -> RunResult:
        import ray

        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._on_sigint) if main else None
        self.progress.start(resumed=self.tally.total)
        reason = None
        try:
            if not self.records:
                self._baseline()
            for k in range(self.k):
                self.islands[k] = self._spawn(k)
            while True:
                reason = self._stop_reason()  # again each time: an invalid proposal frees its slot
                if reason is None:
                    self._fill()
                elif self.loop.interrupts or self.loop.halt:
                    self.ready.clear()  # proposals not yet started: they are proposed again on resume
                else:
                    self._submit_ready()  # counted against the budget already: they run
                if not self.pending:
                    break
                ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    self._advance(ref, self.pending.pop(ref))
        except KeyboardInterrupt:
            for ref in self.pending:
                ray.cancel(ref, force=True)
            reason = "interrupted: the experiments in flight were not recorded and will run again on resume"
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        reason = reason or self._stop_reason() or "done"
        self._island_lines()
        for island in self.islands:
            if island is not None:
                ray.kill(island)
        interrupted = reason.startswith(("interrupted", "stopped by Ctrl-C"))
        result = RunResult(reason, reason.startswith("abort"), interrupted, self.tally)
        self.progress.finish(reason)
        return result

    def _on_sigint(self, _signum: int, _frame: object) -> None:
        self.loop.interrupts += 1
        if self.loop.interrupts == 1:
            self.progress.note("Ctrl-C: finishing the evaluations in flight, then stopping (again to abort)")
            return
        raise KeyboardInterrupt

    def _stop_reason(self) -> str | None:
        if self.loop.interrupts:
            return "stopped by Ctrl-C"
        if self.loop.halt:
            return self.loop.halt
        # every slot in flight may still become an evaluation: count them all against the budget
        return budget_stop(self.spec, self.loop.objective, self.tally, in_flight=self._in_flight())

    def _fill(self) -> None:
        """Start evaluations up to the slots, and keep one proposal ready per island beyond them,
        so a freed slot gets its next candidate without waiting for an island."""
        self._submit_ready()
        slots = self.spec.ray.max_concurrent_evals
        per_island = max(1, -(-slots // self.k)) + 1  # its share of the slots, plus one ready ahead
        busy = [0] * self.k
        for slot in [*self.pending.values(), *self.ready]:
            busy[slot.island] += 1
        for k in sorted(range(self.k), key=lambda i: busy[i]):
            while self._in_flight() < slots + self.k and busy[k] < per_island and self._stop_reason() is None:
                ref = self.islands[k].propose.remote(self._donor(k))
                self.pending[ref] = _Slot("propose", k, started=time.monotonic(), epoch=self.epochs[k])
                busy[k] += 1

    def _drop(self, slot: _Slot) -> None:
        if slot.proposal is not None and slot.proposal.tree and slot.stage != "propose":
            self.evaluating.discard(fingerprint(slot.proposal.tree))

    def _in_flight(self) -> int:
        return len(self.pending) + len(self.ready)

    def _submit_ready(self) -> None:
        if self.loop.interrupts or self.loop.halt:
            return  # stopping: nothing new starts; proposals waiting are proposed again on resume
        evaluating = sum(1 for s in self.pending.values() if s.stage == "evaluate")
        while self.ready and evaluating < self.spec.ray.max_concurrent_evals:
            slot = self.ready.popleft()
            if slot.epoch != self.epochs[slot.island]:
                self._drop(slot)  # proposed by an island that died since: it proposes again
                continue
            prop = slot.proposal
            assert prop is not None
            slot.stage = "evaluate"
            noise = self.parents.payload(prop) if self.parents is not None else None
            tuning = self._tuning(prop) if prop.tune is not None else None
            ref = self.evaluate.remote(
                self.spec,
                self.base_key,
                self.base_ref,
                prop.tree,
                prop.generation,
                prop.island,
                noise,
                tuning,
            )
            self.pending[ref] = slot
            evaluating += 1

    def _advance(self, ref: Any, slot: _Slot) -> None:
        import ray

        if slot.epoch != self.epochs[slot.island]:
            self._drop(slot)  # started by an island that died since; its rebuilt self proposes again
            return
        try:
            value = ray.get(ref)
        except ray.exceptions.RayActorError:
            self.epochs[slot.island] += 1
            self.islands[slot.island] = self._spawn(slot.island)  # rebuilt from the records
            self.progress.note(f"island {slot.island} died; restarted from the records")
            return
        except ray.exceptions.RayError as exc:  # the evaluation's worker died
            if slot.stage != "evaluate":
                raise
            value = (
                Outcome(Status.CRASH, reason=f"the evaluation's worker died: {type(exc).__name__}"),
                "",
                "",
                None,
            )
        if slot.stage == "propose":
            self._proposed(slot, value)
        elif slot.stage == "evaluate":
            slot.outcome, slot.log, slot.node, slot.measured = value
            self._evaluated(slot)
        else:
            self._concluded(slot, value)

    # --- the stages of one experiment

    def _proposed(self, slot: _Slot, prop: Proposal) -> None:
        slot.proposal = prop
        if prop.kind == "crossover":
            prop = self._crossover(prop)
            slot.proposal = prop
        if prop.kind in ("invalid", "rejected"):
            status = Status.INVALID if prop.kind == "invalid" else Status.REJECTED
            return self._record(slot, status, Outcome(status, reason=prop.reason), None)
        parents = [prop.parent, prop.other] if prop.other else [prop.parent]
        commit = self._commit(parents, prop)
        slot.commit = commit
        reason = self.plan.check_candidate(prop.before, prop.changed)
        if reason:
            return self._record(slot, Status.REJECTED, Outcome(Status.REJECTED, reason=reason), commit)
        identity = fingerprint(prop.tree)
        twin = self.seen.get(identity)
        if twin is not None:
            earlier = self.records[twin - 1]
            why = f"duplicate of #{twin} ({earlier.status}, {self.spec.objective.primary}={earlier.value})"
            return self._record(slot, Status.INVALID, Outcome(Status.INVALID, reason=why), commit)
        if identity in self.evaluating:
            why = "duplicate of an evaluation in flight"
            return self._record(slot, Status.INVALID, Outcome(Status.INVALID, reason=why), commit)
        self.evaluating.add(identity)
        slot.stage = "ready"
        self.ready.append(slot)
        self._submit_ready()

    def _evaluated(self, slot: _Slot) -> None:
        assert slot.outcome is not None and slot.proposal is not None
        better = None
        if slot.measured is not None and "tuned" in slot.measured:
            self._tuned(slot)
        elif slot.measured is not None and self.parents is not None:
            self.parents.absorb(slot.measured["incumbent_runs"])  # before the next child is submitted
            better = slot.measured["better"]
        self._submit_ready()  # the slot is free: the next candidate starts before this one is recorded
        outcome = slot.outcome
        value = self.loop.objective.value(outcome.metrics) if outcome.status is None else None
        if outcome.status is None:
            _accepted, feasible, why = self.loop.objective.decide(outcome.metrics, None)
            if not feasible:  # a violated constraint: discarded at once, whatever the island thinks
                slot.outcome = replace(outcome, reason=why)
                return self._record(slot, Status.DISCARD, slot.outcome, slot.commit)
        slot.stage = "conclude"
        ref = self.islands[slot.island].conclude.remote(
            slot.proposal.generation, slot.commit, outcome.status, value, outcome.metrics, better
        )
        self.pending[ref] = slot

    def _concluded(self, slot: _Slot, status: Status) -> None:
        assert slot.outcome is not None
        outcome = slot.outcome
        if slot.measured is not None and not status.accepted and not outcome.reason:
            outcome = replace(outcome, reason=slot.measured.get("reason", ""))
        self._record(slot, status, outcome, slot.commit)

    def _tuning(self, prop: Proposal) -> dict[str, Any]:
        """What a worker needs to tune a hybrid candidate (each run counts against max_evaluations)."""
        from metaexp.candidate import Candidate

        budget, cap = prop.tune.budget, self.spec.budget.max_evaluations
        budget = budget if cap is None else max(1, min(budget, cap - self.tally.evaluations))
        cand = Candidate(
            prop.parent, prop.changed, prop.description, prop.style, prop.params, prop.extra, tune=prop.tune
        )
        return {"candidate": cand, "parent_files": {**prop.tree, **prop.before}, "budget": budget}

    def _tuned(self, slot: _Slot) -> None:
        """The tuned constants are the candidate: its files, params and runs, and a commit of them."""
        assert slot.measured is not None and slot.proposal is not None
        prop, tuned = slot.proposal, slot.measured["tuned"]
        self.evaluating.discard(fingerprint(prop.tree))
        tree = {**prop.tree, **tuned["files"]}
        changed = {p: tree[p] for p in {*prop.changed, *tuned["files"]}}
        slot.proposal = replace(
            prop,
            tree=tree,
            changed=changed,
            before={p: prop.before.get(p, prop.tree.get(p, b"")) for p in changed},
            params=tuned["params"],
            extra=tuned["extra"],
            description=tuned["description"],
        )
        self.evaluating.add(fingerprint(tree))
        if changed != prop.changed:
            parents = [prop.parent, prop.other] if prop.other else [prop.parent]
            slot.commit = self._commit(parents, slot.proposal)

    def _learn(self, rec: ExperimentRecord) -> None:
        if self.parents is not None:
            self.parents.learn(rec)

    def _commit(self, parents: list[str], prop: Proposal) -> str:
        message = f"metaexp island-{prop.island} g{prop.generation}"
        message += f" [{prop.style}]" if prop.style else ""
        message = f"{message}: {prop.description}"[:200] + "\n"
        if len(parents) == 1:
            return self.ledger.commit(parents[0], prop.changed, message)
        tree = self.ws.git.tree_with(self.ledger.listing(parents[0]), prop.changed)
        return self.ws.git.commit(tree, parents, message)

    def _crossover(self, prop: Proposal) -> Proposal:
        """Compose two individuals' changes: git's three-way merge of their commits."""
        assert prop.other is not None
        composed = compose(self.ws.git, sorted(self.plan.target_files), prop.parent, prop.other)
        if isinstance(composed, str):
            return replace(prop, kind="invalid", reason=f"{composed} ({prop.description})")
        ours, changed = composed
        tree = {**ours, **changed}
        before = {p: ours.get(p, b"") for p in changed}
        return replace(
            prop,
            kind="candidate",
            tree=tree,
            changed=changed,
            before=before,
            style="crossover",
            extra={**prop.extra, "parents": [prop.parent, prop.other]},
        )

    # --- recording

    def _record(self, slot: _Slot, status: Status, outcome: Outcome, commit: str | None) -> None:
        prop = slot.proposal
        assert prop is not None
        n = self.tally.total + 1
        value = self.loop.objective.value(outcome.metrics) if not status.failed else None
        best_value = self.tally.best.value if self.tally.best else None
        is_best = status.accepted and value is not None and self.loop.objective.is_better(value, best_value)
        extra = dict(prop.extra)
        if prop.tree:
            extra["lines"] = line_count(prop.tree)
            extra["fingerprint"] = fingerprint(prop.tree)
        if slot.node:
            extra["node"] = slot.node
        if outcome.cascade:
            extra["cascade"] = outcome.cascade
        if slot.measured is not None and "runs" in slot.measured:
            m = slot.measured
            extra.update(runs=m["runs"], incumbent_runs=m["incumbent_runs"], noise=m["stats"])
            if m["cascade"]:
                extra["cascade"] = m["cascade"]
            if "confirmed" in m["stats"]:
                extra["confirmed"] = m["stats"]["confirmed"]
        if is_best and self.spec.harness.validation is not None and prop.tree:
            extra["validation"] = self._validate(prop.tree, n)
        extra["latency_s"] = round(time.monotonic() - slot.started, 4)  # proposal to decision
        rec = ExperimentRecord(
            n=n,
            commit=commit,
            parent=prop.parent,
            timestamp=timestamp(),
            status=status,
            description=prop.description,
            metrics=outcome.metrics,
            value=value,
            diff_lines=diff_lines(prop.before, prop.changed),
            wall_time_s=self._clock(),
            harness_s=round(outcome.harness_s, 4),
            operator=self.spec.operator.kind,
            style=prop.style,
            params=prop.params,
            seed=self.spec.seed,
            reason=outcome.reason,
            log_tail=outcome.log_tail if status.failed else "",
            best=is_best,
            extra=extra,
            usage=prop.usage,
            island=prop.island,
            generation=prop.generation,
        )
        self._write(rec, slot.log)
        # the driver's tree is the child's: a crossover's is composed here, a hybrid's tuned here
        self.islands[prop.island].observe.remote(rec, prop.tree or None)
        if status.harness_ran:
            ran, kept = self.island_counts.get(prop.island, (0, 0))
            self.island_counts[prop.island] = (ran + 1, kept + (status is Status.KEEP))
            if self.tally.ran % (10 * self.k) == 0:
                self._island_lines()
        if status.harness_ran and rec.island < self.k:
            self._maybe_migrate(prop.island)

    def _validate(self, tree: dict[str, bytes], n: int) -> dict[str, object]:
        """The held-out harness on a new best, as a Ray task on the evaluation resources."""
        import ray

        from metaexp.run.cluster import remote_validate

        self.progress.note(f"#{n}: a new best; running the held-out validation harness")
        task = remote_validate(self.spec.ray.eval_resources)
        return ray.get(task.remote(self.spec, self.base_key, self.base_ref, tree, n))

    def _clock(self) -> float:
        """Seconds since the previous row: with evaluations overlapping, rows still add up to the clock."""
        now = time.monotonic()
        elapsed, self._mark = now - self._mark, now
        return round(elapsed, 4)

    def _write(self, rec: ExperimentRecord, log: str) -> None:
        if log:
            (self.ws.out / "logs" / f"{rec.n}.log").write_text(log)
        moves = self._moves(rec)
        self.ledger.record(rec, moves)
        self.records.append(rec)
        self.tally.add(rec)
        self._remember(rec)
        self._learn(rec)
        self.progress.recorded(rec)
        if self.loop.on_record is not None:
            self.loop.halt = self.loop.on_record(rec, self.tally) or self.loop.halt

    def _moves(self, rec: ExperimentRecord) -> dict[str, str]:
        """Branches this record moves: the global best, and an island's best individual."""
        tag = self.spec.tag
        moves: dict[str, str] = {}
        if rec.best and rec.commit:
            moves[f"refs/heads/autoexp/{tag}/best"] = rec.commit
        if rec.n == 1:
            self.pops = replay(self.spec, [rec], self.k)
        elif rec.island < self.k:
            self.pops[rec.island].observe(rec, self.spec)
        for k in [rec.island] if rec.n > 1 else range(self.k):
            top = self.pops[k].best()
            if top is not None and self.island_best.get(k) != top.commit:
                moves[f"refs/heads/autoexp/{tag}/island-{k}"] = top.commit
                self.island_best[k] = top.commit
        return moves

    def _remember(self, rec: ExperimentRecord) -> None:
        identity = rec.extra.get("fingerprint")
        if identity and rec.status.harness_ran:
            self.seen.setdefault(identity, rec.n)
            self.evaluating.discard(identity)
        if rec.status.accepted and rec.value is not None and rec.commit:
            self.hof.update(individual(rec, self.spec))

    # --- baseline, islands, migration

    def _baseline(self) -> None:
        import ray

        prop = Proposal(
            0,
            0,
            "candidate",
            self.plan.start,
            tree=dict(self.plan.target_files),
            description="baseline",
            params=self._baseline_params(),
        )
        slot = _Slot("evaluate", 0, prop, self.plan.start, started=time.monotonic())
        outcome, slot.log, slot.node, _test = ray.get(
            self.evaluate.remote(self.spec, self.base_key, self.base_ref, prop.tree, 0, 0)
        )
        status = outcome.status or Status.KEEP
        self._record_baseline(slot, status, outcome)

    def _record_baseline(self, slot: _Slot, status: Status, outcome: Outcome) -> None:
        prop = slot.proposal
        assert prop is not None
        value = self.loop.objective.value(outcome.metrics) if not status.failed else None
        rec = ExperimentRecord(
            n=1,
            commit=self.plan.start,
            parent=None,
            timestamp=timestamp(),
            status=status,
            description="baseline",
            metrics=outcome.metrics,
            value=value,
            wall_time_s=self._clock(),
            harness_s=round(outcome.harness_s, 4),
            operator="baseline",
            params=prop.params,
            seed=self.spec.seed,
            reason=outcome.reason,
            log_tail=outcome.log_tail if status.failed else "",
            best=value is not None,
            island=0,
            extra={"node": slot.node, "fingerprint": fingerprint(prop.tree), "lines": line_count(prop.tree)},
        )
        self._write(rec, slot.log)

    def _baseline_params(self) -> dict[str, Any]:
        try:
            return self.plan.operator([], dict(self.plan.target_files)).params_of(self.plan.target_files)
        except Exception:
            return {}

    def _spawn(self, k: int) -> Any:
        from metaexp.run.cluster import island_actor

        plan = self._island_plan(k)
        wanted = {m.commit for m in self.pops[k].members} | {
            self.records[0].commit if self.records else plan.start
        }
        files = {c: self._files(c) for c in wanted if c}
        out = self.ws.out / f"island-{k}"
        out.mkdir(exist_ok=True)
        name = f"metaexp:{self.spec.tag}:island-{k}"
        return island_actor(name).remote(k, plan, self.records, files, out)

    def _island_plan(self, k: int) -> Plan:
        islands = self.spec.strategy.islands
        if isinstance(islands, int):
            return self.plan
        override = islands[k]
        op = self.spec.operator.model_copy(
            update={
                key: value
                for key, value in (
                    ("style", override.style),
                    ("program", override.program),
                    ("schedule", override.schedule),
                )
                if value is not None
            }
        )
        update: dict[str, Any] = {"operator": op}
        if override.target:
            update["target"] = override.target
        spec = self.spec.model_copy(update=update)
        return make_plan(spec, start=self.plan.start)

    def _files(self, commit: str) -> dict[str, bytes]:
        listing = self.ledger.listing(commit)
        return {p: self.ws.git.blob(listing[p].sha) for p in self.plan.target_files if p in listing}

    def _donor(self, k: int) -> tuple[Any, dict[str, bytes]] | None:
        """A hall-of-fame member from another island, for restart_from_hall_of_fame escapes."""
        escape = self.spec.strategy.escape
        if not escape or escape.action != "restart_from_hall_of_fame":
            return None
        others = [m for m in self.hof.members if m.island != k] or self.hof.members
        if not others:
            return None
        return others[0], self._files(others[0].commit)

    def _maybe_migrate(self, k: int) -> None:
        import ray

        migration = self.spec.strategy.migration
        if not migration or self.k < 2:
            return
        done = self.island_counts.get(k, (0, 0))[0]
        if done == 0 or done % migration.every:
            return
        target = (k + 1) % self.k
        for ind, _files in ray.get(self.islands[k].migrants.remote(migration.count)):
            source = self.records[ind.n - 1]
            rec = replace(
                source,
                n=self.tally.total + 1,
                parent=source.commit,
                timestamp=timestamp(),
                status=Status.MIGRATE,
                description=f"migrant #{source.n} from island {k}",
                wall_time_s=0.0,
                harness_s=0.0,
                best=False,
                usage={},
                island=target,
                generation=0,
                reason="",
                log_tail="",
            )
            self._write(rec, "")
            self.islands[target].observe.remote(rec, _files)

    def _island_lines(self) -> None:
        """One line per island: its best, its experiments and keep rate (from the driver's copy);
        the same figures, DEAP Logbook-style, and the hall of fame go to population.json."""
        self._save_population()
        for k, pop in enumerate(self.pops):
            ran, kept = self.island_counts.get(k, (0, 0))
            top = pop.best()
            best = f"{top.values[0]:.6g} ({top.commit[:7]})" if top else "-"
            rate = f"{kept / ran:.0%}" if ran else "-"
            self.progress.note(
                f"  island {k}: best {best}, {ran} experiments, keep rate {rate}, "
                f"{pop.stagnation} since its last improvement"
            )

    def _save_population(self) -> None:
        from metaexp.decide.selectors import island_stats

        islands = []
        for k, pop in enumerate(self.pops):
            ran, _kept = self.island_counts.get(k, (0, 0))
            book = self.logbooks.setdefault(k, [])
            if not book or book[-1]["gen"] != ran:
                book.append(island_stats(pop.members, pop.signs, ran))
            archive = pop.archive.to_dict() if pop.archive is not None else None
            islands.append(
                {
                    "island": k,
                    "logbook": book,
                    "archive": archive,
                    "members": [m.to_dict() for m in pop.members],
                }
            )
        data = {"hall_of_fame": self.hof.to_dict(), "islands": islands}
        tmp = self.ws.out / "population.json.tmp"
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.ws.out / "population.json")


def _refuse_single_branch(ws: Workspace) -> None:
    if ws.git.resolve(ws.branch):
        raise WorkspaceError(
            f"branch autoexp/{ws.tag} exists (a single-lineage run with this tag); a population run needs "
            f"autoexp/{ws.tag}/island-<k>, and git cannot have both: use another tag"
        )
