"""The experiment loop: propose → evaluate → decide → record, until a budget stops it."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TextIO

from metaexp.candidate import Candidate, diff_lines
from metaexp.decide.objectives import Objective
from metaexp.evaluate.harness import Interrupted, Outcome, evaluate
from metaexp.evaluate.noise import CONFIRM_BLOCK
from metaexp.evaluate.repeats import Measured, Repeater
from metaexp.operators import (
    InvalidProposal,
    LineageState,
    Operator,
    RejectedProposal,
    experiment_rng,
)
from metaexp.record import refs
from metaexp.record.ledger import Ledger
from metaexp.record.records import ExperimentRecord, Status, read_records, timestamp
from metaexp.record.workspace import Workspace
from metaexp.run.plan import Plan, make_plan
from metaexp.run.progress import Progress
from metaexp.spec import Spec


@dataclass
class Tally:
    """Running counts, updated per record (nothing rescans the history per experiment)."""

    total: int = 0
    ran: int = 0
    crash_streak: int = 0
    invalid_streak: int = 0
    clock_s: float = 0.0
    best: ExperimentRecord | None = None
    counts: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    max_call_cost_usd: float = 0.0  # the dearest single LLM call so far: the next one may cost as much
    evaluations: int = 0  # harness runs: each repeat, incumbent run and hybrid tuning run counts

    def add(self, rec: ExperimentRecord) -> None:
        self.total += 1
        cost = float(rec.usage.get("cost_usd", 0.0))
        self.cost_usd += cost
        calls = max(1.0, float(rec.usage.get("calls", 1.0)))
        self.max_call_cost_usd = max(self.max_call_cost_usd, cost / calls)
        self.clock_s += rec.wall_time_s
        self.counts[str(rec.status)] = self.counts.get(str(rec.status), 0) + 1
        if rec.status.harness_ran:
            self.ran += 1
            runs = len(rec.extra.get("runs", [])) + len(rec.extra.get("incumbent_runs", []))
            self.evaluations += max(1, runs)
            self.invalid_streak = 0
            self.crash_streak = self.crash_streak + 1 if rec.status.failed else 0
        else:
            self.invalid_streak += 1
        if rec.best:
            self.best = rec


def budget_stop(spec: Spec, objective: Objective, t: Tally, in_flight: int = 0) -> str | None:
    """Why the run must stop now, or None. `in_flight`: evaluations already under way."""
    b = spec.budget
    if t.total >= 1 and t.counts.get("keep", 0) == 0 and t.ran >= 1:
        return "abort: the baseline (the unchanged start) did not produce the metrics; see its log"
    if b.max_experiments is not None and t.ran + in_flight >= b.max_experiments:
        return f"max_experiments={b.max_experiments} reached"
    if b.max_evaluations is not None and t.evaluations + in_flight >= b.max_evaluations:
        return f"max_evaluations={b.max_evaluations} reached"
    if b.max_wall_clock_h is not None and t.clock_s >= b.max_wall_clock_h * 3600:
        return f"max_wall_clock_h={b.max_wall_clock_h:g} reached"
    if b.abort_on_consecutive_crashes is not None and t.crash_streak >= b.abort_on_consecutive_crashes:
        return f"abort: {t.crash_streak} crashes/timeouts in a row (abort_on_consecutive_crashes)"
    if b.max_invalid_streak is not None and t.invalid_streak >= b.max_invalid_streak:
        return f"abort: {t.invalid_streak} rejected/invalid proposals in a row (max_invalid_streak)"
    if b.max_cost_usd is not None and t.cost_usd + t.max_call_cost_usd > b.max_cost_usd:
        spent = f"${t.cost_usd:.4f} spent; the next call may cost ${t.max_call_cost_usd:.4f}"
        return f"max_cost_usd={b.max_cost_usd:g} reached ({spent})"
    if t.best is not None and objective.reached(t.best.value, b.target):
        return f"target {b.target:g} reached"
    return None


OnRecord = Callable[[ExperimentRecord, Tally], str | None]  # see Loop: returns a reason to stop


@dataclass(frozen=True)
class RunResult:
    stop_reason: str
    aborted: bool  # stopped by a failure (crash streak, invalid streak, a broken baseline)
    interrupted: bool
    tally: Tally


class Loop:
    def __init__(self, spec: Spec, out: TextIO = sys.stderr, on_record: OnRecord | None = None) -> None:
        self.spec = spec
        self.objective = Objective.of(spec)
        self.out = out
        self._interrupts = 0
        self.on_record = on_record  # after each record: a reason to stop (an outer study's pruner), or None
        self.halt: str | None = None

    def run(self) -> RunResult:
        ws = Workspace(self.spec.root, self.spec.tag)
        ws.open()
        try:
            return self._run(ws)
        finally:
            ws.close()

    def _run(self, ws: Workspace) -> RunResult:
        history = read_records(ws.out / "experiments.jsonl")
        plan = make_plan(self.spec, start=history[0].commit if history else None)
        if history and plan.start != (ws.git.resolve(self.spec.start) or plan.start):
            print(
                f"note: resuming from the run's own start {plan.start[:7]}, not {self.spec.start}",
                file=self.out,
            )
        ws.ensure_worktree(plan.start)
        ws.prepare_base(plan.start, plan.listing, sorted(plan.target_files))
        ledger = Ledger(ws, self.spec, plan.space)
        records = ledger.open()
        try:
            return _Session(self, plan, ws, ledger, records).drive()
        finally:
            ledger.close()


class _Session:
    """One invocation of `metaexp run`: the lineage's state and the per-experiment steps."""

    def __init__(
        self, loop: Loop, plan: Plan, ws: Workspace, ledger: Ledger, records: list[ExperimentRecord]
    ) -> None:
        self.loop, self.plan, self.ws, self.ledger = loop, plan, ws, ledger
        self.spec = plan.spec
        self.objective = loop.objective
        self.tally = Tally()
        for rec in records:
            self.tally.add(rec)
        self.state = self._state_from(records)
        self.operator: Operator = plan.operator(records, dict(self.state.files), ws.out)
        self.repeater = Repeater(self.spec, self.objective) if self.spec.noise.method != "none" else None
        if self.repeater is not None:
            self.repeater.restore(records)
        self.progress = Progress(self.spec, loop.out, self.tally)
        self._mark = time.monotonic()  # when recording the previous experiment began

    def _state_from(self, records: list[ExperimentRecord]) -> LineageState:
        current = refs.current(records)
        if current is None:
            return LineageState(self.plan.start, self.plan.target_files, {}, None)
        last = [r for r in records if r.commit == current and r.status.accepted][-1]
        listing = self.ledger.listing(current)
        files = {p: self.ws.git.blob(listing[p].sha) for p in self.plan.target_files if p in listing}
        return LineageState(current, files, last.metrics, last.value)

    def drive(self) -> RunResult:
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        self.progress.start(resumed=self.tally.total)
        try:
            while (reason := self._stop_reason()) is None:
                self._experiment(self.tally.total + 1)
        except KeyboardInterrupt:
            reason = "interrupted: the experiment in flight was not recorded and will run again on resume"
        finally:
            signal.signal(signal.SIGINT, previous)
        interrupted = reason.startswith(("interrupted", "stopped by Ctrl-C"))
        result = RunResult(reason, reason.startswith("abort"), interrupted, self.tally)
        self.progress.finish(result.stop_reason)
        return result

    def _on_sigint(self, _signum: int, _frame: object) -> None:
        self.loop._interrupts += 1
        if self.loop._interrupts == 1:
            self.progress.note("Ctrl-C: finishing this experiment, then stopping (Ctrl-C again to abort it)")
            return
        raise KeyboardInterrupt

    def _stop_reason(self) -> str | None:
        if self.loop._interrupts:
            return "stopped by Ctrl-C"
        if self.loop.halt:
            return self.loop.halt
        return budget_stop(self.spec, self.objective, self.tally)

    # --- one experiment

    def _experiment(self, n: int) -> None:
        t0 = self._mark  # recording the previous experiment counts too: the rows add up to the run's clock
        rng = experiment_rng(self.spec.seed, n)
        tuned = None
        if n == 1:
            cand = Candidate(self.state.commit, {}, "baseline", "", self.operator.params_of(self.state.files))
            commit = self.state.commit
        else:
            try:
                cand = self.operator.propose(self.state, n, rng)
            except InvalidProposal as exc:
                status = Status.REJECTED if isinstance(exc, RejectedProposal) else Status.INVALID
                cand = Candidate(self.state.commit, {}, str(status), extra=exc.extra, usage=exc.usage)
                return self._record(n, None, cand, status, Outcome(status, reason=str(exc)), t0)
            tuned = self._tune(n, cand)  # hybrid: the tuned constants are what gets committed
            cand = tuned[0] if tuned is not None else cand
            commit = self.ledger.commit(cand.parent, cand.files, _message(n, cand))
            reason = self._rejection(cand)
            if reason:
                return self._record(
                    n, commit, cand, Status.REJECTED, Outcome(Status.REJECTED, reason=reason), t0
                )
        self.progress.running(n, commit, cand.description)
        files = {**self.state.files, **cand.files}
        measured = None
        try:
            if tuned is not None:
                outcome = tuned[1]
            elif self.repeater is None or n == 1:
                outcome = self._run(n)(files, self.spec.seed, "")
            else:
                block = self.tally.counts.get("keep", 0) + self.tally.counts.get("explore", 0)
                measured = self.repeater.measure(
                    self._run(n), files, self.state.commit, self.state.files, block, CONFIRM_BLOCK + n
                )
                outcome = measured.outcome
                cand = replace(
                    cand,
                    extra={
                        **cand.extra,
                        "runs": measured.runs,
                        "incumbent_runs": measured.incumbent_runs,
                        "noise": measured.stats,
                        **{k: v for k, v in measured.stats.items() if k == "confirmed"},
                    },
                )
        except Interrupted:
            raise KeyboardInterrupt from None
        status, why = self._decide(n, outcome, rng, measured)
        if why and not outcome.reason:
            outcome = Outcome(outcome.status, outcome.metrics, outcome.harness_s, why, outcome.log_tail)
        cascade = measured.cascade if measured is not None else outcome.cascade
        if cascade:
            cand = replace(cand, extra={**cand.extra, "cascade": cascade})
        if self.spec.harness.validation is not None and self._new_best(status, outcome):
            held_out = self._validate(n, files)
            cand = replace(cand, extra={**cand.extra, "validation": held_out})
        self._record(n, commit, cand, status, outcome, t0)

    def _new_best(self, status: Status, outcome: Outcome) -> bool:
        value = self.objective.value(outcome.metrics) if not status.failed else None
        best = self.tally.best.value if self.tally.best else None
        return status.accepted and value is not None and self.objective.is_better(value, best)

    def _validate(self, n: int, files: Mapping[str, bytes]) -> dict[str, object]:
        """The held-out harness on a new best: its metrics, or why it gave none."""
        from metaexp.evaluate.harness import validate

        assert self.ws.base_tree is not None
        log = self.ws.out / "logs" / f"{n}.validation.log"
        self.progress.note(f"#{n}: a new best; running the held-out validation harness")
        try:
            return validate(self.spec, self.ws.base_tree, n, files, log)
        except Interrupted:
            raise KeyboardInterrupt from None

    def _tune(self, n: int, cand: Candidate) -> tuple[Candidate, Outcome] | None:
        """A candidate that asks for tuning and may run, tuned through the same runs as repeats;
        each run counts against budget.max_evaluations."""
        if cand.tune is None or self._rejection(cand):
            return None
        from metaexp.operators.tuning import tune

        budget, cap = cand.tune.budget, self.spec.budget.max_evaluations
        budget = budget if cap is None else max(1, min(budget, cap - self.tally.evaluations))
        self.progress.running(n, cand.parent, f"tuning: {cand.description}")
        try:
            return tune(cand, self.state.files, self._run(n), self.objective, self.spec.seed, budget)
        except Interrupted:
            raise KeyboardInterrupt from None

    def _run(self, n: int) -> Callable[[Mapping[str, bytes], int, str], Outcome]:
        """One harness run of experiment n on a seed; run i > 0 logs to logs/<n>.<label>.log."""
        assert self.ws.base_tree is not None
        base = self.ws.base_tree

        def run(files: Mapping[str, bytes], seed: int, label: str) -> Outcome:
            log = self.ws.out / "logs" / (f"{n}.log" if label in ("", "0") else f"{n}.{label}.log")
            return evaluate(self.spec, base, n, files, log, seed=seed, cascade=label in ("", "0"))

        return run

    def _rejection(self, cand: Candidate) -> str:
        return self.plan.check_candidate(self.state.files, cand.files)

    def _decide(
        self, n: int, outcome: Outcome, rng: object, measured: Measured | None = None
    ) -> tuple[Status, str]:
        """The status of a measured candidate, and why (e.g. the constraint it violates)."""
        if outcome.status is not None:
            return outcome.status, outcome.reason
        if n == 1:
            return Status.KEEP, ""
        accepted, feasible, why = self.objective.decide(outcome.metrics, dict(self.state.metrics))
        if measured is not None:  # repeated runs: the sequential test decides, the objective gates
            accepted, why = measured.better and feasible, why if not feasible else measured.reason
        if accepted:
            return Status.KEEP, ""
        s = self.spec.strategy
        every = s.explore_every is not None and n % s.explore_every == 0
        if feasible and (every or (s.explore_rate > 0 and rng.random() < s.explore_rate)):  # type: ignore[attr-defined]
            return Status.EXPLORE, ""
        return Status.DISCARD, why if not feasible or measured is not None else ""

    def _record(
        self, n: int, commit: str | None, cand: Candidate, status: Status, outcome: Outcome, t0: float
    ) -> None:
        value = self.objective.value(outcome.metrics) if not status.failed else None
        best_value = self.tally.best.value if self.tally.best else None
        is_best = status.accepted and value is not None and self.objective.is_better(value, best_value)
        rec = ExperimentRecord(
            n=n,
            commit=commit,
            parent=cand.parent if n > 1 else None,
            timestamp=timestamp(),
            status=status,
            description=cand.description,
            metrics=outcome.metrics,
            value=value,
            diff_lines=diff_lines(self.state.files, cand.files),
            wall_time_s=round(time.monotonic() - t0, 4),
            harness_s=round(outcome.harness_s, 4),
            operator=self.operator.name if n > 1 else "baseline",
            style=cand.style,
            params=cand.params,
            seed=self.spec.seed,
            reason=outcome.reason,
            log_tail=outcome.log_tail if status.failed else "",
            best=is_best,
            extra=cand.extra,
            usage=cand.usage,
        )
        self._mark = time.monotonic()  # the next row's clock starts here and counts this recording
        moves = {self.ws.branch: commit} if status.accepted and commit and n > 1 else {}
        if is_best and commit:
            moves[f"{self.ws.refs_prefix}/best"] = commit
        self.ledger.record(rec, moves)
        self.operator.observe(rec)
        self.tally.add(rec)
        if status.accepted and commit:
            self.state = LineageState(commit, {**self.state.files, **cand.files}, outcome.metrics, value)
        self.progress.recorded(rec)
        if self.loop.on_record is not None:
            self.loop.halt = self.loop.on_record(rec, self.tally) or self.loop.halt


def _message(n: int, cand: Candidate) -> str:
    style = f" [{cand.style}]" if cand.style else ""
    return f"metaexp #{n}{style}: {cand.description}"[:200] + "\n"
