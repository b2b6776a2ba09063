"""Running a study: every planned run, or its resumption, then the study's outputs.

A study that is run again skips the runs its ledgers show finished and resumes the others. The
runs go one after another in this process, or `parallel` at once in worker processes (pool.py);
either way the figures are read from the runs' ledgers, so they do not depend on which.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from metaexp.errors import SpecError
from metaexp.record.records import read_records
from metaexp.spec.loading import SpecSource
from metaexp.study.execution import Outcome, execute
from metaexp.study.outputs import write_outputs
from metaexp.study.planning import DEFAULT_STRATEGIES, PlannedRun, plan_runs
from metaexp.study.summary import RunSummary, summarize, summarize_run

__all__ = ["StudyResult", "run_study"]


@dataclass
class StudyResult:
    summary: dict[str, Any]
    runs: list[RunSummary] = field(default_factory=list)
    interrupted: bool = False
    out: Path | None = None

    @property
    def unfinished(self) -> int:
        return sum(1 for s in self.runs if not s.stop)


def run_study(
    spec_path: SpecSource,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    seeds: int = 20,
    budget: int | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    stream: TextIO = sys.stderr,
    verbose: bool = False,
    root: str | os.PathLike[str] | None = None,
    parallel: int = 1,
) -> StudyResult:
    """Run (or resume) every planned run, then write study.json, study.txt and study.png.
    `spec_path` is a spec file, or a mapping of its keys whose project is `root`. `parallel`: runs
    at once, each in a worker process (1: one after another, in this process); the figures do not
    depend on it."""
    from metaexp.record.git import Git
    from metaexp.record.workspace import Workspace
    from metaexp.run.hosts import kept
    from metaexp.run.plan import make_plan

    if parallel < 1:
        raise SpecError(f"--parallel: at least 1 run at once (got {parallel})")
    base, runs = plan_runs(spec_path, strategies, seeds, budget, root)
    for run in {r.strategy: r for r in runs}.values():  # `metaexp validate`'s checks, before any run
        make_plan(run.spec)
    root = Git(base.root).toplevel()
    out = Path(out_dir) if out_dir else root / ".metaexp" / f"{base.tag}-study"
    lock = Workspace(root, f"{base.tag}-study")  # one driver per study (and .metaexp/ excluded once)
    lock.open()
    try:
        with kept():  # population runs one after another share their lineages' processes
            interrupted = _Progress(runs, root, stream).drive(parallel, verbose)
    finally:
        lock.close()
    summaries = [_summary_of(run, root) for run in runs]
    if interrupted:
        print("study interrupted: run it again to resume", file=stream, flush=True)
        return StudyResult({}, summaries, interrupted=True)
    report = summarize(base, runs, summaries)
    write_outputs(report, summaries, out)
    return StudyResult(report, summaries, out=out)


class _Progress:
    """Runs what is left to run, serially or side by side, with a line as each run starts and ends."""

    def __init__(self, runs: Sequence[PlannedRun], root: Path, stream: TextIO) -> None:
        self.runs, self.root, self.stream = runs, root, stream

    def drive(self, parallel: int, verbose: bool) -> bool:
        """True: Ctrl-C stopped the study."""
        todo = []
        for i, run in enumerate(self.runs, 1):
            summary = _summary_of(run, self.root)
            if summary.stop:
                self._line(i, run, f"done earlier; {_outcome_text(summary)}")
            else:
                todo.append((i, run))
        if parallel > 1 and len(todo) > 1:
            from metaexp.study.pool import run_parallel

            return run_parallel(todo, parallel, self.started, self.finished, verbose)
        for i, run in todo:
            self.started(i, run)
            outcome = execute(run.spec, self.stream if verbose else None)
            if outcome.fatal is not None:
                raise outcome.fatal  # a bad spec or state: every other run would fail the same way
            self.finished(i, run, outcome)
            if outcome.interrupted:
                return True
        return False

    def started(self, i: int, run: PlannedRun) -> None:
        self._line(i, run, f"running ({run.strategy}, seed {run.seed})")

    def finished(self, i: int, run: PlannedRun, outcome: Outcome) -> None:
        if outcome.fatal is not None:
            self._line(i, run, f"refused: {outcome.fatal}")
        elif outcome.error is not None:
            self._line(i, run, f"failed: {outcome.error}\n{outcome.tail}")
        else:
            summary = _summary_of(run, self.root)
            self._line(i, run, f"{_outcome_text(summary)} ({outcome.seconds:.1f}s)")

    def _line(self, i: int, run: PlannedRun, text: str) -> None:
        print(f"[{i}/{len(self.runs)}] {run.spec.tag}: {text}", file=self.stream, flush=True)


def _summary_of(run: PlannedRun, root: Path) -> RunSummary:
    records = read_records(root / ".metaexp" / run.spec.tag / "experiments.jsonl")
    return summarize_run(run.spec, run.strategy, records)


def _outcome_text(s: RunSummary) -> str:
    best = "no value" if s.best is None else f"best {s.best:.6g}"
    if s.reached:
        return f"reached the target at evaluation {s.evals_to_target} ({best}; {s.stop})"
    return f"target not reached after {s.evaluations} evaluations ({best}; {s.stop or 'unfinished'})"
