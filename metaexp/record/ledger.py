"""The ledger: the one writer of a run's records.

Per experiment, in this order: the try's commit objects (before the run), then
one fsynced line in experiments.jsonl (the source of truth), one row in
results.tsv, one Optuna trial, and the refs. A kill between any two steps is
repaired on the next start from the jsonl, so nothing is lost or counted
twice. Everything reaches the ledger as plain data (`record(...)`), so a
population can later put islands in front of one ledger process.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaexp.errors import LedgerError, SpecError
from metaexp.record.git import Entry
from metaexp.record.records import ExperimentRecord, Status, read_records

if TYPE_CHECKING:
    import optuna

    from metaexp.decide.objectives import MultiObjective
    from metaexp.record.workspace import Workspace
    from metaexp.spec import Spec
    from metaexp.spec.space import Space


@dataclass(frozen=True)
class Lineage:
    """What the records say the refs must be."""

    current: str | None  # the branch: last accepted try
    best: str | None
    tried: dict[int, str]


def single_lineage_refs(ws: Workspace, records: list[ExperimentRecord]) -> dict[str, str]:
    """The named refs a single-lineage run's records imply: its branch and its best."""
    lineage = lineage_of(records)
    refs = {ws.branch: lineage.current, f"{ws.refs_prefix}/best": lineage.best}
    return {ref: sha for ref, sha in refs.items() if sha}


def lineage_of(records: Iterable[ExperimentRecord]) -> Lineage:
    current = best = None
    tried: dict[int, str] = {}
    for rec in records:
        if rec.commit:
            tried[rec.n] = rec.commit
        if rec.status.accepted:
            current = rec.commit
        if rec.best:
            best = rec.commit
    return Lineage(current, best, tried)


class Ledger:
    def __init__(
        self,
        workspace: Workspace,
        metrics: list[str],
        direction: str,
        storage: str | None,
        space: Space | None = None,
        multi: MultiObjective | None = None,
        spec: Spec | None = None,
    ) -> None:
        self.ws = workspace
        self.metrics = metrics
        self.direction = direction
        self.storage_url = storage
        self.space = space or {}
        self.multi = multi  # the spec's objective mode: trial values (several for pareto), constraints
        self.spec = spec  # shown with the study (a user attr and a dashboard note), so runs compare
        self.jsonl = workspace.out / "experiments.jsonl"
        self.tsv = workspace.out / "results.tsv"
        self._fd: int | None = None
        self._study: optuna.Study | None = None
        self._listings: dict[str, dict[str, Entry]] = {}

    # --- start-up

    def open(
        self, expected_refs: Callable[[list[ExperimentRecord]], dict[str, str]] | None = None
    ) -> list[ExperimentRecord]:
        """Read the records, drop a torn last line, and repair TSV, Optuna and refs from them.
        `expected_refs` maps the records to the named refs they imply (default: one lineage)."""
        records = read_records(self.jsonl)
        self._truncate_torn_tail()
        self._fd = os.open(self.jsonl, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._repair_tsv(records)
        self._repair_study(records)
        self._repair_refs(records, expected_refs or (lambda recs: single_lineage_refs(self.ws, recs)))
        return records

    def close(self) -> None:
        if self._fd is not None:
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
            tmp.write_text(self._tsv_header() + "".join(self._tsv_row(r) for r in records))
            os.replace(tmp, self.tsv)

    def _repair_study(self, records: list[ExperimentRecord]) -> None:
        told = {t.user_attrs.get("experiment") for t in self.study.get_trials(deepcopy=False)}
        for rec in records:
            if rec.n not in told and rec.status is not Status.MIGRATE:
                self.study.add_trial(self._trial(rec))

    def _repair_refs(
        self, records: list[ExperimentRecord], expected: Callable[[list[ExperimentRecord]], dict[str, str]]
    ) -> None:
        tried = lineage_of(records).tried
        have = self.ws.git.refs(self.ws.refs_prefix + "/")
        updates: dict[str, str | None] = {}
        for n, sha in tried.items():
            if have.get(f"{self.ws.refs_prefix}/tried/{n}") != sha:
                updates[f"{self.ws.refs_prefix}/tried/{n}"] = sha
        for ref in have:
            tail = ref.removeprefix(f"{self.ws.refs_prefix}/tried/")
            if tail.isdigit() and int(tail) not in tried:
                updates[ref] = None  # a try that was never recorded: it will be proposed again
        for ref, sha in expected(records).items():
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
        os.write(self._fd, line)
        os.fsync(self._fd)
        _crashpoint("after-jsonl", rec.n)
        with self.tsv.open("a") as fh:
            fh.write(self._tsv_row(rec))
        _crashpoint("after-tsv", rec.n)
        if rec.status is not Status.MIGRATE:  # a copy, not a try: no trial of its own
            self.study.add_trial(self._trial(rec))
        _crashpoint("after-optuna", rec.n)
        updates: dict[str, str | None] = {**(moves or {})}
        if rec.commit:
            updates[f"{self.ws.refs_prefix}/tried/{rec.n}"] = rec.commit
        self.ws.git.update_refs(updates)
        if self.ws.branch in updates:
            self.ws.sync_worktree()

    # --- formats

    def _held_out(self) -> list[str]:
        """The validation harness's metrics: columns `val:<name>` after the run's own."""
        held_out = self.spec.harness.validation if self.spec is not None else None
        return list(held_out.metric_specs) if held_out is not None else []

    def _repeated(self) -> bool:
        """A noisy harness: rows say how many runs the metrics are the mean of, and their spread."""
        return self.spec is not None and self.spec.noise.method != "none"

    def _tsv_header(self) -> str:
        held_out = [f"val:{m}" for m in self._held_out()]
        spread = ["runs", f"std:{self.metrics[0]}"] if self._repeated() else []
        return "\t".join(["commit", *self.metrics, *spread, *held_out, "status", "description"]) + "\n"

    def _tsv_row(self, rec: ExperimentRecord) -> str:
        values = [f"{rec.metrics[m]:.6f}" if m in rec.metrics else "" for m in self.metrics]
        if self._repeated():
            n, std = run_spread(rec, self.metrics[0])
            values += [str(n) if n else "", f"{std:.6f}" if std is not None else ""]
        validated = rec.extra.get("validation", {}).get("metrics", {})
        values += [f"{validated[m]:.6f}" if m in validated else "" for m in self._held_out()]
        text = " ".join(rec.description.split())  # no tabs or newlines inside a cell
        return "\t".join([(rec.commit or "-")[:7], *values, str(rec.status), text]) + "\n"

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            directions = self.multi.directions() if self.multi is not None else [self.direction]
            self._study = open_study(self.storage_url, self.ws.root, self.ws.tag, directions)
            describe_study(self._study, self._metric_names(), self.spec)
        return self._study

    def _metric_names(self) -> list[str]:
        """What the trial values are: every compared metric (pareto), the weighted score, or the primary."""
        if self.multi is not None:
            mode = self.multi.spec.mode
            if mode == "pareto":
                return list(self.multi._compared)
            return ["weighted_score" if mode == "weighted" else self.multi.spec.primary]
        return [self.spec.objective.primary if self.spec is not None else self.metrics[0]]

    def _trial(self, rec: ExperimentRecord) -> optuna.trial.FrozenTrial:
        from optuna.trial import TrialState, create_trial

        params = {k: v for k, v in rec.params.items() if k in self.space and self.space[k].contains(v)}
        attrs: dict[str, Any] = {
            "experiment": rec.n,
            "commit": rec.commit,
            "parent": rec.parent,
            "status": str(rec.status),
            "description": rec.description[:500],
            "operator": rec.operator,
            "style": rec.style,
            "harness_s": round(rec.harness_s, 3),
            "island": rec.island,
            "cost_usd": float(rec.usage.get("cost_usd", 0.0)),
            **{f"metric:{k}": v for k, v in rec.metrics.items()},
            **{f"validation:{k}": v for k, v in rec.extra.get("validation", {}).get("metrics", {}).items()},
        }
        if "runs" in rec.extra:  # repeats: the values are means over n runs
            n, std = run_spread(rec, self.metrics[0])
            attrs.update({"runs": n, f"std:{self.metrics[0]}": std})
            attrs.update({f"noise:{k}": v for k, v in rec.extra.get("noise", {}).items()})
        if rec.reason:
            attrs["reason"] = rec.reason[:500]
        attrs.update({f"llm_{k}": v for k, v in rec.usage.items()})
        other = {k: v for k, v in rec.params.items() if k not in params}
        if other:
            attrs["params"] = json.loads(json.dumps(other, default=str))
        ok = not rec.status.failed and rec.value is not None
        values = [rec.value] if ok else None
        constraints = None
        if self.multi is not None:
            values = self.multi.values(rec.metrics) if ok else None
            has_constraints = self.multi.spec.constraints or self.multi.spec.threshold
            if ok and has_constraints:
                names = self.multi.constraint_names()
                constraints = dict(zip(names, self.multi.constraint_values(rec.metrics), strict=True))
        ok = ok and values is not None
        return create_trial(
            state=TrialState.COMPLETE if ok else TrialState.FAIL,
            values=values if ok else None,
            params=params,
            distributions={k: self.space[k].distribution() for k in params},
            user_attrs=attrs,
            constraints=constraints,
        )


def run_spread(rec: ExperimentRecord, metric: str) -> tuple[int, float | None]:
    """How many runs a record's metrics average, and the sample std of `metric` over them."""
    import statistics

    values = [r["metrics"][metric] for r in rec.extra.get("runs", []) if metric in r.get("metrics", {})]
    return len(values), statistics.stdev(values) if len(values) > 1 else None


def open_study(storage: str | None, root: Path, tag: str, direction: str | list[str]) -> optuna.Study:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = [direction] if isinstance(direction, str) else direction
    return optuna.create_study(
        storage=make_storage(storage, root), study_name=tag, directions=directions, load_if_exists=True
    )


def describe_study(study: optuna.Study, metric_names: list[str], spec: Spec | None) -> None:
    """Metric names, and the spec as declared (presets resolved, defaults left out: what tells runs
    apart) as the study's user attr `spec` and, when optuna-dashboard is installed, as its note.
    Written only when missing or changed: a resumed run adds nothing to the storage, and a note
    edited in the dashboard stays until the spec changes."""
    if study.metric_names != metric_names:
        import warnings

        from optuna.exceptions import ExperimentalWarning

        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in practice
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.set_metric_names(metric_names)
    if spec is None:
        return
    data = json.loads(spec.model_dump_json(exclude_unset=True))
    if data.get("storage"):
        data["storage"] = masked(data["storage"])  # the study is shown to whoever reads the storage
    changed = study.user_attrs.get("spec") != data
    if changed:
        study.set_user_attr("spec", data)
    try:
        from optuna_dashboard import get_note, save_note
    except ImportError:  # the ledger works without the dashboard
        return
    if changed or not get_note(study):
        import yaml

        spec_yaml = yaml.safe_dump(data, sort_keys=False)
        save_note(study, f"## metaexp run `{spec.tag}`\n\n```yaml\n{spec_yaml}```\n")


def make_storage(url: str | None, root: Path) -> Any:
    """None: the repository's journal file. A path: a journal file. grpc://HOST:PORT: Optuna's gRPC
    storage proxy (docs/storage.md). Else any Optuna RDB URL."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if url and url.startswith("grpc://"):
        return grpc_proxy(url)
    if url and "://" in url:
        return url
    path = Path(url) if url else Path(".metaexp") / "optuna.journal"
    path = path if path.is_absolute() else root / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def grpc_proxy(url: str) -> Any:
    """A client of `optuna.storages.run_grpc_proxy_server` at grpc://HOST:PORT (needs grpcio)."""
    import warnings

    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import GrpcStorageProxy

    host, _, port = url.removeprefix("grpc://").rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise SpecError(f"storage: {url!r}: a gRPC storage proxy is given as grpc://HOST:PORT")
    try:
        import grpc  # noqa: F401  (optuna imports it lazily, and fails late without it)
    except ImportError:
        raise SpecError(f"storage: {url!r} needs grpcio: pip install 'metaexp[grpc]'") from None
    with warnings.catch_warnings():  # experimental since Optuna 4.2
        warnings.simplefilter("ignore", ExperimentalWarning)
        return GrpcStorageProxy(host=host.strip("[]"), port=int(port))


def masked(url: str) -> str:
    """A storage URL with its password replaced by ***, for printing and for the study's note."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def _crashpoint(name: str, n: int) -> None:
    """Fault injection for the resume tests: METAEXP_CRASHPOINT=after-tsv:3 kills the run there."""
    want = os.environ.get("METAEXP_CRASHPOINT")
    if want and want == f"{name}:{n}":
        os.kill(os.getpid(), signal.SIGKILL)


__all__ = [
    "Ledger",
    "LedgerError",
    "Lineage",
    "Status",
    "describe_study",
    "grpc_proxy",
    "lineage_of",
    "make_storage",
    "masked",
    "open_study",
    "single_lineage_refs",
]
