"""Running a study: every planned run, or its resumption, then the study's outputs.

A study that is run again skips the runs its ledgers show finished and resumes the others.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from metaexp.errors import MetaexpError
from metaexp.record.records import read_records
from metaexp.run.budget import RunResult
from metaexp.spec import Spec
from metaexp.spec.loading import SpecSource
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
) -> StudyResult:
    """Run (or resume) every planned run, then write study.json, study.txt and study.png.
    `spec_path` is a spec file, or a mapping of its keys whose project is `root`."""
    from metaexp.record.git import Git
    from metaexp.run.plan import make_plan

    base, runs = plan_runs(spec_path, strategies, seeds, budget, root)
    for run in {r.strategy: r for r in runs}.values():  # `metaexp validate`'s checks, before any run
        make_plan(run.spec)
    root = Git(base.root).toplevel()
    out = Path(out_dir) if out_dir else root / ".metaexp" / f"{base.tag}-study"
    summaries = []
    for i, run in enumerate(runs, 1):
        summary, interrupted = _run_one(run, root, f"[{i}/{len(runs)}] {run.spec.tag}:", stream, verbose)
        summaries.append(summary)
        if interrupted:
            print("study interrupted: run it again to resume", file=stream, flush=True)
            return StudyResult({}, summaries, interrupted=True)
    report = summarize(base, runs, summaries)
    write_outputs(report, summaries, out)
    return StudyResult(report, summaries, out=out)


def _run_one(
    run: PlannedRun, root: Path, head: str, stream: TextIO, verbose: bool
) -> tuple[RunSummary, bool]:
    """Run or resume one run unless its ledger shows it finished: its summary, and whether Ctrl-C
    stopped it."""
    summary = _summary_of(run, root)
    if summary.stop:
        print(f"{head} done earlier; {_outcome_text(summary)}", file=stream, flush=True)
        return summary, False
    print(f"{head} running ({run.strategy}, seed {run.seed})", file=stream, flush=True)
    t0 = time.monotonic()
    buffer = io.StringIO()
    try:
        result = _execute(run.spec, stream if verbose else buffer)
    except MetaexpError:
        raise  # a bad spec or state: every other run would fail the same way
    except Exception as exc:  # a bug in one run: the others still run; this one resumes later
        tail = "".join(buffer.getvalue().splitlines(True)[-5:])
        why = (str(exc).strip().splitlines() or [""])[-1]  # a Ray error's last line is the cause
        print(f"{head} failed: {type(exc).__name__}: {why}\n{tail}", file=stream, flush=True)
        return _summary_of(run, root), False
    summary = _summary_of(run, root)
    print(f"{head} {_outcome_text(summary)} ({time.monotonic() - t0:.1f}s)", file=stream, flush=True)
    return summary, result.interrupted


def _execute(spec: Spec, out: TextIO) -> RunResult:
    from metaexp.run import run

    return run(spec, out=out)


def _summary_of(run: PlannedRun, root: Path) -> RunSummary:
    records = read_records(root / ".metaexp" / run.spec.tag / "experiments.jsonl")
    return summarize_run(run.spec, run.strategy, records)


def _outcome_text(s: RunSummary) -> str:
    best = "no value" if s.best is None else f"best {s.best:.6g}"
    if s.reached:
        return f"reached the target at evaluation {s.evals_to_target} ({best}; {s.stop})"
    return f"target not reached after {s.evaluations} evaluations ({best}; {s.stop or 'unfinished'})"
