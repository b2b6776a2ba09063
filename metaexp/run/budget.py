"""When a run stops: its running counts (Tally), the budget's limits, Ctrl-C, and an outer study's halt.

Every scheduler asks `Stopping.reason(...)` before it starts anything new; the counts are updated per
record, so nothing rescans the history per experiment.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from metaexp.record.records import ExperimentRecord, read_records

if TYPE_CHECKING:
    from metaexp.decide.objectives import Objective
    from metaexp.spec import Spec

INTERRUPTED = "interrupted: the experiments in flight were not recorded and will run again on resume"
CTRL_C = "Ctrl-C: the experiment(s) in flight were finished and recorded"


def interrupted(reason: str) -> bool:
    """A stop reason that says the user (or a dying driver) cut the run short, not its budget."""
    return reason.startswith((INTERRUPTED, CTRL_C))


@dataclass
class Tally:
    """Running counts, updated per record."""

    total: int = 0
    ran: int = 0
    crash_streak: int = 0
    # in the current crash streak, the newest sign that the harness, not the changes, fails: the record
    # whose probe failed (its parent no longer runs) or whose evaluation Ray lost; with why
    broken: tuple[int, str] | None = None
    invalid_streak: int = 0
    clock_s: float = 0.0
    best: ExperimentRecord | None = None
    counts: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    max_call_cost_usd: float = 0.0  # the dearest single LLM call so far: the next one may cost as much
    evaluations: int = 0  # harness runs: each repeat, parent run and hybrid tuning run counts

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
            probe = rec.extra.get("probe")
            self.evaluations += max(1, runs) + (probe is not None)
            self.invalid_streak = 0
            self.crash_streak = self.crash_streak + 1 if rec.status.failed else 0
            if probe is not None and probe.get("status") == "ok":  # the change failed, not the harness
                self.crash_streak = 0
            if self.crash_streak == 0:
                self.broken = None
            elif probe is not None:
                self.broken = (rec.n, f"#{rec.n}'s parent failed too when run again (logs/{rec.n}.probe.log)")
            elif rec.extra.get("lost"):
                self.broken = (rec.n, f"#{rec.n}'s evaluation could not run at all (see its reason)")
        else:
            self.invalid_streak += 1
        if rec.best:
            self.best = rec


def budget_stop(spec: Spec, objective: Objective, t: Tally, in_flight: int = 0) -> str | None:
    """Why the run must stop now, or None. `in_flight`: evaluations already under way."""
    b = spec.budget
    if t.total >= 1 and t.counts.get("keep", 0) == 0 and t.ran >= 1:
        return (
            f"abort: the baseline (the unchanged start) did not produce the metrics; see its log,"
            f" .metaexp/{spec.tag}/logs/1.log. This run cannot go on: once the harness is fixed (and"
            " committed), start a new run under another `tag:`"
        )
    if b.max_experiments is not None and t.ran + in_flight >= b.max_experiments:
        return f"max_experiments={b.max_experiments} reached"
    if b.max_evaluations is not None and t.evaluations + in_flight >= b.max_evaluations:
        return f"max_evaluations={b.max_evaluations} reached"
    if b.max_proposals is not None and t.total + in_flight >= b.max_proposals:
        return f"max_proposals={b.max_proposals} reached"
    if b.max_wall_clock_h is not None and t.clock_s >= b.max_wall_clock_h * 3600:
        return f"max_wall_clock_h={b.max_wall_clock_h:g} reached"
    limit = b.abort_on_consecutive_crashes
    if limit is not None and t.crash_streak >= limit and t.broken is not None:
        return (
            f"abort: {t.crash_streak} crashes/timeouts in a row, and {t.broken[1]}: the harness or its"
            " environment is broken (abort_on_consecutive_crashes)"
        )
    if b.max_invalid_streak is not None and t.invalid_streak >= b.max_invalid_streak:
        return f"abort: {t.invalid_streak} rejected/invalid proposals in a row (max_invalid_streak)"
    if b.max_cost_usd is not None and t.cost_usd + t.max_call_cost_usd > b.max_cost_usd:
        spent = f"${t.cost_usd:.4f} spent; the next call may cost ${t.max_call_cost_usd:.4f}"
        return f"max_cost_usd={b.max_cost_usd:g} reached ({spent})"
    if t.best is not None and objective.reached(t.best.value, b.target):
        return f"target {b.target:g} reached"
    return None


OnRecord = Callable[[ExperimentRecord, Tally], str | None]  # after each record: a reason to stop, or None


@dataclass(frozen=True)
class RunResult:
    """What a run (or a pipeline's last stage) ended with: why it stopped, its counts, its best, and
    where its ledger lies. The counts and the best cover the whole run, resumed parts included."""

    stop_reason: str
    aborted: bool  # stopped by a failure (crash streak, invalid streak, a broken baseline)
    interrupted: bool
    tally: Tally
    out_dir: Path | None = None  # the run's outputs, .metaexp/<tag>/ in the repository

    @classmethod
    def of(cls, reason: str, tally: Tally, out_dir: Path | None = None) -> RunResult:
        return cls(reason, reason.startswith("abort"), interrupted(reason), tally, out_dir)

    @property
    def best(self) -> ExperimentRecord | None:
        """The record of the best experiment (the last new best), or None if none ran."""
        return self.tally.best

    @property
    def best_commit(self) -> str | None:
        return self.best.commit if self.best else None

    @property
    def best_value(self) -> float | None:
        """The best's decision metric (the objective's primary value)."""
        return self.best.value if self.best else None

    @property
    def best_metrics(self) -> dict[str, float]:
        return dict(self.best.metrics) if self.best else {}

    @property
    def counts(self) -> dict[str, int]:
        """Records per status (keep, discard, crash, invalid, ...)."""
        return dict(self.tally.counts)

    @property
    def experiments(self) -> int:
        """Records whose harness ran (what budget.max_experiments counts)."""
        return self.tally.ran

    @property
    def proposals(self) -> int:
        """Every record, including the ones that never ran (rejected, invalid, migrants)."""
        return self.tally.total

    @property
    def cost_usd(self) -> float:
        return self.tally.cost_usd

    @property
    def experiments_jsonl(self) -> Path | None:
        """The ledger (one JSON line per record, the source of truth)."""
        return self.out_dir / "experiments.jsonl" if self.out_dir else None

    @property
    def results_tsv(self) -> Path | None:
        return self.out_dir / "results.tsv" if self.out_dir else None

    def records(self) -> list[ExperimentRecord]:
        """Every record of the run, in order, read from experiments.jsonl."""
        return read_records(self.experiments_jsonl) if self.experiments_jsonl else []


class Stopping:
    """Why a run stops now: Ctrl-C (the first finishes what is in flight, the second aborts it), a
    halt from the on_record hook (an outer study's pruner), or the budget."""

    def __init__(self, spec: Spec, objective: Objective, tally: Tally, note: Callable[[str], None]) -> None:
        self.spec, self.objective, self.tally, self.note = spec, objective, tally, note
        self.interrupts = 0
        self.halt: str | None = None

    @property
    def stopping(self) -> bool:
        """Nothing new may start (proposals not yet started are proposed again on resume)."""
        return bool(self.interrupts or self.halt)

    def reason(self, in_flight: int = 0) -> str | None:
        if self.interrupts:
            return CTRL_C
        if self.halt:
            return self.halt
        return budget_stop(self.spec, self.objective, self.tally, in_flight)

    @contextmanager
    def ctrl_c(self) -> Iterator[None]:
        """SIGINT handled as above while the run drives (only the main thread can install it)."""
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._on_sigint) if main else None
        try:
            yield
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)

    def _on_sigint(self, _signum: int, _frame: object) -> None:
        self.interrupts += 1
        if self.interrupts == 1:
            self.note("Ctrl-C: finishing the experiment(s) in flight, then stopping (Ctrl-C again to abort)")
            return
        raise KeyboardInterrupt
