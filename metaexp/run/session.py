"""One invocation of a run: its workspace, plan, ledger and records, opened once and closed once.

The session is the one writer: every record, from whichever scheduler and lineage, is written by
`write` in this process (the jsonl line, the TSV row, the Optuna trial, the refs, the logs). A run
that finds records resumes from them: the plan keeps the commit the run started from.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import TracebackType
from typing import TextIO

from metaexp.decide.objectives import Objective
from metaexp.errors import WorkspaceError
from metaexp.evaluate.sandbox import BaseTree
from metaexp.record.ledger import Ledger
from metaexp.record.records import ExperimentRecord, read_records
from metaexp.record.workspace import Workspace
from metaexp.run.budget import Stopping, Tally
from metaexp.run.plan import Plan, make_plan, uncommitted_note
from metaexp.run.progress import Progress
from metaexp.spec import Spec


class Session:
    def __init__(self, spec: Spec, out: TextIO = sys.stderr) -> None:
        self.spec, self.out = spec, out
        self.objective = Objective.of(spec)
        self.ws = Workspace(spec.root, spec.tag)
        self.tally = Tally()
        self.progress = Progress(spec, out, self.tally)
        self.stopping = Stopping(spec, self.objective, self.tally, self.progress.note)
        self.records: list[ExperimentRecord] = []

    def __enter__(self) -> Session:
        self.ws.open()
        try:
            self._open()
        except BaseException:
            self.ws.close()
            raise
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        try:
            self.ledger.close()
        finally:
            self.ws.close()

    def _open(self) -> None:
        if self.spec.strategy.is_population:
            _refuse_single_branch(self.ws)
        history = read_records(self.ws.out / "experiments.jsonl")
        self.plan: Plan = make_plan(self.spec, start=history[0].commit if history else None)
        if not history and (note := uncommitted_note(self.plan)):
            self.progress.note(note)
        if history and self.plan.start != (self.ws.git.resolve(self.spec.start) or self.plan.start):
            self.progress.note(
                f"note: resuming from the run's own start {self.plan.start[:7]}, not {self.spec.start}"
            )
        if not self.spec.strategy.is_population:
            self.ws.ensure_worktree(self.plan.start)  # a single lineage's branch, checked out for the user
        self.base: BaseTree = self.ws.prepare_base(
            self.plan.start, self.plan.listing, sorted(self.plan.target_files)
        )
        if self.base.tampered:  # restored already; say so before anything runs on it
            raise WorkspaceError(
                f"the frozen harness files {', '.join(self.base.tampered)} of run {self.spec.tag!r} were "
                "changed since the run last used them (a harness or another program wrote them); they are "
                "restored from git: find what changed them, then run again"
            )
        self.ledger = Ledger(self.ws, self.spec, self.plan.space, targets=self.plan.target_files)
        self.records = self.ledger.open()
        for rec in self.ledger.quarantined:
            self.progress.note(
                f"warning: experiments.jsonl held a line this run did not write (#{rec.n}, {rec.commit}): "
                "moved to experiments.quarantine.jsonl"
            )
        for rec in self.records:
            self.tally.add(rec)
        if self.tally.broken is not None:  # a resumed run probes again: the harness may be fixed by now
            self.progress.note(
                f"resuming after {self.tally.crash_streak} crashes/timeouts in a row: the next one that"
                " fails runs its parent again, and the run aborts again only if that fails too"
            )
            self.tally.broken = None

    def files(self, commit: str) -> dict[str, bytes]:
        """The target files of a commit, from git."""
        listing = self.ledger.listing(commit)
        return {p: self.ws.git.blob(listing[p].sha) for p in self.plan.target_files if p in listing}

    def write(self, rec: ExperimentRecord, moves: Mapping[str, str], logs: Mapping[str, str]) -> None:
        """Record one experiment: its logs (logs/<n>.log, logs/<n>.<name>.log), then the ledger."""
        for name, text in logs.items():
            (self.ws.out / "logs" / (f"{rec.n}.{name}.log" if name else f"{rec.n}.log")).write_text(text)
        self.ledger.record(rec, moves)
        self.records.append(rec)
        self.tally.add(rec)
        self.progress.recorded(rec)


def _refuse_single_branch(ws: Workspace) -> None:
    if ws.git.resolve(ws.branch):
        raise WorkspaceError(
            f"branch autoexp/{ws.tag} exists (a single-lineage run with this tag); a population run needs "
            f"autoexp/{ws.tag}/island-<k>, and git cannot have both: use another tag"
        )
