"""The ledger: the one writer of a run's records.

Per experiment, in this order: the try's commit objects (before the run), then
one line in experiments.jsonl (the source of truth), one row in
results.tsv, the try's artifacts (diff, log tail, changed files: record/artifacts.py),
one Optuna trial that names them, and the refs. A kill between any two steps is
repaired on the next start from the jsonl, so nothing is lost or counted
twice. Everything reaches the ledger as plain data (`record(...)`), from whichever
scheduler drove the experiment; the refs a run's records imply are metaexp/record/refs.py.

The line is written at once; the rest (its fsync first, then the row, the artifacts and trial,
the refs) in a writer thread while the loop goes on to the next experiment, whose line waits until
all of it is done, as closing the ledger does. The order on disk is the one above, so a kill
anywhere is repaired as before; the loop's next proposal and harness run no longer wait for it
(an fsync alone stalled the loop up to 0.2 s when the kernel's writeback of the run's other files
queued ahead of it).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from metaexp.crashpoints import crashpoint
from metaexp.errors import LedgerError
from metaexp.record import artifacts, refs
from metaexp.record.git import Entry
from metaexp.record.quarantine import quarantine, trusted
from metaexp.record.records import ExperimentRecord, Status, read_records
from metaexp.record.rows import Rows, run_spread
from metaexp.record.storage import describe_study, open_study

if TYPE_CHECKING:
    import optuna

    from metaexp.record.workspace import Workspace
    from metaexp.spec import Spec
    from metaexp.spec.space import Space


class Ledger:
    def __init__(
        self, workspace: Workspace, spec: Spec, space: Space | None = None, targets: Collection[str] = ()
    ) -> None:
        from metaexp.decide.objectives import Objective

        self.ws = workspace
        self.spec = spec  # shown with the study (a user attr and a dashboard note), so runs compare
        multi = Objective.of(spec).multi
        assert multi is not None
        self.multi = multi  # the objective mode: trial values (pareto: several), constraints
        self.rows = Rows(spec, space or {}, multi)
        self.jsonl = workspace.out / "experiments.jsonl"
        self.tsv = workspace.out / "results.tsv"
        self._fd: int | None = None
        self._writing: Future[None] | None = None  # the rest of the last record, being written
        self._writer: ThreadPoolExecutor | None = None
        self._study: optuna.Study | None = None
        self._listings: dict[str, dict[str, Entry]] = {}
        self.quarantined: list[ExperimentRecord] = []  # lines open() moved aside
        self.targets = frozenset(targets)  # the changed ones among them are artifacts of a try
        self.store = artifacts.make_store(spec.artifacts, workspace.root)  # None: `store: none`
        self._trial_of: dict[str, int] = {}  # commit -> the number of the trial of its try
        self._n_trials = 0  # trials in the study: the number the next one gets (one writer)

    # --- start-up

    def open(self) -> list[ExperimentRecord]:
        """Read the records, drop a torn last line, quarantine lines this run did not write, and
        repair TSV, Optuna and refs from the rest."""
        self._truncate_torn_tail()
        records, self.quarantined = trusted(read_records(self.jsonl), self.ws.git, self.ws.refs_prefix)
        if self.quarantined:
            quarantine(self.jsonl, records, self.quarantined)
        self._fd = os.open(self.jsonl, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._repair_tsv(records)
        self._repair_study(records)
        self._repair_refs(records)
        return records

    def close(self) -> None:
        if self._fd is not None:
            try:
                self._written()
            finally:
                if self._writer is not None:
                    self._writer.shutdown()
                    self._writer = None
                os.close(self._fd)
            self._fd = None
        self.ws.git.close()

    def _truncate_torn_tail(self) -> None:
        if not self.jsonl.exists():
            return
        data = self.jsonl.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.jsonl.open("r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)

    def _repair_tsv(self, records: list[ExperimentRecord]) -> None:
        rows = self.tsv.read_text().count("\n") - 1 if self.tsv.exists() else -1
        if rows != len(records):
            tmp = self.tsv.with_suffix(".tsv.tmp")
            tmp.write_text(self.rows.tsv_header() + "".join(self.rows.tsv_row(r) for r in records))
            os.replace(tmp, self.tsv)

    def _repair_study(self, records: list[ExperimentRecord]) -> None:
        """Add the trials a kill left out (their artifacts written again under the same ids)."""
        trials = self.study.get_trials(deepcopy=False)
        for t in trials:
            if isinstance(t.user_attrs.get("commit"), str):
                self._trial_of.setdefault(t.user_attrs["commit"], t.number)
        self._n_trials = len(trials)
        told = {t.user_attrs.get("experiment") for t in trials}
        for rec in records:
            if rec.n not in told and rec.status is not Status.MIGRATE:
                self._add_trial(rec)

    def _repair_refs(self, records: list[ExperimentRecord]) -> None:
        tried = refs.tried(records)
        have = self.ws.git.refs(self.ws.refs_prefix + "/")
        updates: dict[str, str | None] = {}
        for n, sha in tried.items():
            if have.get(f"{self.ws.refs_prefix}/tried/{n}") != sha:
                updates[f"{self.ws.refs_prefix}/tried/{n}"] = sha
        for ref in have:
            tail = ref.removeprefix(f"{self.ws.refs_prefix}/tried/")
            if tail.isdigit() and int(tail) not in tried:
                updates[ref] = None  # a try that was never recorded: it will be proposed again
        for ref, sha in refs.run_refs(self.spec, records).items():
            if self.ws.git.resolve(ref) != sha:
                updates[ref] = sha
        self.ws.git.update_refs(updates)
        if self.ws.branch in updates:
            self.ws.sync_worktree()

    # --- per experiment

    def listing(self, commit: str) -> dict[str, Entry]:
        if commit not in self._listings:
            if len(self._listings) > 8:
                self._listings.pop(next(iter(self._listings)))
            self._listings[commit] = self.ws.git.listing(commit)
        return self._listings[commit]

    def commit(self, parent: str, files: Mapping[str, bytes], message: str) -> str:
        """Write a try's commit (objects only; refs move when it is recorded)."""
        tree = self.ws.git.tree_with(self.listing(parent), files)
        return self.ws.git.commit(tree, [parent], message)

    def record(self, rec: ExperimentRecord, moves: Mapping[str, str] | None = None) -> None:
        """One experiment, told exactly once. `moves`: named refs that now point elsewhere."""
        assert self._fd is not None, "ledger not open"
        line = (rec.to_json() + "\n").encode()
        self._written()  # the last record is written whole before this line
        self.ws.git.flush_objects()  # and the commit it names is in git's objects
        os.write(self._fd, line)
        crashpoint(f"after-jsonl:{rec.n}")
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="ledger writer")
        self._writing = self._writer.submit(self._write_rest, rec, dict(moves or {}))

    def _write_rest(self, rec: ExperimentRecord, moves: Mapping[str, str]) -> None:
        """In the writer thread: the line's fsync, the TSV row, the trial and the refs."""
        assert self._fd is not None
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise LedgerError(f"{self.jsonl}: fsync failed: {exc}") from None
        with self.tsv.open("a") as fh:
            fh.write(self.rows.tsv_row(rec))
        crashpoint(f"after-tsv:{rec.n}")
        if rec.status is not Status.MIGRATE:  # a copy, not a try: no trial of its own
            self._add_trial(rec)
        crashpoint(f"after-optuna:{rec.n}")
        updates: dict[str, str | None] = {**moves}
        if rec.commit:
            updates[f"{self.ws.refs_prefix}/tried/{rec.n}"] = rec.commit
        self.ws.git.update_refs(updates)
        if self.ws.branch in updates:
            self.ws.sync_worktree()

    def _written(self) -> None:
        """Wait for the last record's writer; its error (a failed fsync, git) is raised here."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def _add_trial(self, rec: ExperimentRecord) -> None:
        """The try's artifacts into the store, then its trial, which names them and its parent's trial."""
        extra: dict[str, Any] = {}
        if rec.parent in self._trial_of:
            extra["parent_trial"] = self._trial_of[rec.parent]
        system: dict[str, Any] = {}
        if self.store is not None:
            found = artifacts.of_try(self.ws.git, rec, self.ws.out / "logs", self.targets)
            system = artifacts.write(self.store, self.ws.tag, rec, found)
            diff = next((a.body.decode(errors="replace") for a in found if a.key == "diff"), "")
            if diff:
                extra["diff"] = artifacts.excerpt(diff)
        crashpoint(f"after-artifacts:{rec.n}")
        self.study.add_trial(self.rows.trial(rec, extra, system))
        if rec.commit:
            self._trial_of.setdefault(rec.commit, self._n_trials)
        self._n_trials += 1

    # --- the study

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            directions = self.multi.directions()
            self._study = open_study(self.spec.storage, self.ws.root, self.ws.tag, directions)
            describe_study(self._study, self.rows.metric_names(), self.spec)
        return self._study


__all__ = ["Ledger", "LedgerError", "run_spread"]
