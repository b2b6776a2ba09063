"""A try's artifacts: its diff against its parent, the tail of its log and its changed target files,
kept in an Optuna artifact store and named by its trial, so optuna-dashboard shows what a try changed.

The ledger writes them with the trial, in an order a kill cannot split badly: the files go to the
store first, under ids that are a function of the try (a uuid5 of the study, the experiment, the
commit and the file's role), then the trial is added with their metadata as `artifacts:<id>`
system attrs, the form `optuna.artifacts.upload_artifact` writes and `get_all_artifact_meta` and
optuna-dashboard read. A kill before the trial leaves files that no trial names yet; the repair on
the next start writes the same ids again with the same bytes, so nothing is lost and nothing is
doubled. (`upload_artifact` itself sets a system attr on a trial, which Optuna refuses once the
trial is finished, and the ledger adds each trial finished, in one storage write.)
"""

from __future__ import annotations

import io
import json
import mimetypes
import uuid
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaexp.errors import SpecError
from metaexp.record.records import ExperimentRecord

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

    from metaexp.record.git import Git
    from metaexp.spec.artifacts import ArtifactsSpec

__all__ = [
    "ATTR_PREFIX",
    "Artifact",
    "artifact_id",
    "changed_blobs",
    "excerpt",
    "make_store",
    "of_try",
    "store_label",
    "unified_diff",
    "write",
]

ATTR_PREFIX = "artifacts:"  # Optuna's key for an artifact's metadata (optuna/artifacts/_upload.py)
LOG_TAIL_BYTES = 64 * 1024  # the end of a try's log that is kept as log.txt
FILE_LIMIT_BYTES = 1 << 20  # a changed target file larger than this is left to the diff
EXCERPT_CHARS = 1000  # the diff's start as the trial's user attr `diff`, shown in the trial page
NAMESPACE = uuid.UUID("1f0c6b1e-7d2a-5c3e-9a4b-6d8e0f2a3b4c")  # of metaexp's artifact ids
TREE_MODE = "40000"
GITLINK_MODE = "160000"  # a submodule's commit: not an object of this repository


@dataclass(frozen=True)
class Artifact:
    key: str  # its role: "diff", "log", "file:<path>" (the id is made from it)
    filename: str  # as the dashboard shows it
    body: bytes
    mimetype: str


# ---------------------------------------------------------------------------
# The store


def make_store(spec: ArtifactsSpec, root: Path, create: bool = True) -> ArtifactStore | None:
    """The spec's artifact store (None: `store: none`); a relative path is under `root`, made when
    missing if `create` (the ledger writes, the dashboard only reads)."""
    import importlib.util

    from optuna import artifacts

    if spec.store == "none":
        return None
    if spec.store == "filesystem":
        path = Path(spec.path).expanduser()
        path = path if path.is_absolute() else root / path
        try:
            if create:
                path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpecError(f"artifacts.path: cannot make {path}: {exc.strerror or exc}") from None
        return artifacts.FileSystemArtifactStore(path)
    module, package = (
        ("boto3", "boto3") if spec.store == "s3" else ("google.cloud.storage", "google-cloud-storage")
    )
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # google is not installed at all
        found = False
    if not found:
        raise SpecError(f"artifacts.store: {spec.store} needs {package}: pip install 'metaexp[{spec.store}]'")
    assert spec.bucket is not None  # the spec requires it
    if spec.store == "s3":
        import boto3

        client = boto3.client("s3", endpoint_url=spec.endpoint_url) if spec.endpoint_url else None
        return artifacts.Boto3ArtifactStore(spec.bucket, client)
    import warnings

    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():  # experimental since Optuna 3.4
        warnings.simplefilter("ignore", ExperimentalWarning)
        return artifacts.GCSArtifactStore(spec.bucket)


def store_label(spec: ArtifactsSpec, root: Path) -> str:
    """Where the artifacts are, as printed."""
    if spec.store == "filesystem":
        path = Path(spec.path).expanduser()
        return str(path if path.is_absolute() else root / path)
    return "none" if spec.store == "none" else f"{spec.store}://{spec.bucket}"


# ---------------------------------------------------------------------------
# What a try changed, read from git


def _tree(found: tuple[str, bytes] | None) -> dict[str, tuple[str, str]]:
    """A tree object's entries: name -> (mode, sha)."""
    if found is None or found[0] != "tree":
        return {}
    body, entries, i = found[1], {}, 0
    while i < len(body):
        space = body.index(b" ", i)
        nul = body.index(b"\0", space)
        entries[body[space + 1 : nul].decode(errors="replace")] = (
            body[i:space].decode(),
            body[nul + 1 : nul + 21].hex(),
        )
        i = nul + 21
    return entries


def _root_tree(found: tuple[str, bytes] | None) -> str | None:
    """A commit object's tree."""
    if found is None or found[0] != "commit" or not found[1].startswith(b"tree "):
        return None
    return found[1][5:45].decode()


def changed_blobs(git: Git, parent: str, commit: str) -> dict[str, tuple[str | None, str | None]]:
    """Every file that differs between two commits: path -> (old blob, new blob), None where it is
    absent. Walks both trees through git's object reader, into the subtrees that differ only."""
    changed: dict[str, tuple[str | None, str | None]] = {}
    roots = [_root_tree(found) for found in git.objects([parent, commit])]
    pending: list[tuple[str, str | None, str | None]] = [("", roots[0], roots[1])]
    while pending:
        found = iter(git.objects(name for _, a, b in pending for name in (a, b) if name))
        deeper: list[tuple[str, str | None, str | None]] = []
        for prefix, a, b in pending:
            old = _tree(next(found)) if a else {}
            new = _tree(next(found)) if b else {}
            for name in sorted(old.keys() | new.keys()):
                was, now = old.get(name), new.get(name)
                if was == now:
                    continue
                trees = [e[1] if e and e[0] == TREE_MODE else None for e in (was, now)]
                blobs = [e[1] if e and e[0] not in (TREE_MODE, GITLINK_MODE) else None for e in (was, now)]
                if any(trees):
                    deeper.append((f"{prefix}{name}/", trees[0], trees[1]))
                if blobs[0] != blobs[1]:
                    changed[prefix + name] = (blobs[0], blobs[1])
        pending = deeper
    return changed


def unified_diff(changes: dict[str, tuple[bytes | None, bytes | None]]) -> str:
    """A git-style unified diff of (old, new) contents by path; None: the file does not exist."""
    import difflib

    parts = []
    for path, (old, new) in sorted(changes.items()):
        a = "/dev/null" if old is None else f"a/{path}"
        b = "/dev/null" if new is None else f"b/{path}"
        parts.append(f"diff --git a/{path} b/{path}\n")
        if b"\0" in (old or b"") or b"\0" in (new or b""):
            parts.append(f"Binary files {a} and {b} differ\n")
            continue
        lines = difflib.unified_diff(
            (old or b"").decode(errors="replace").splitlines(),
            (new or b"").decode(errors="replace").splitlines(),
            a,
            b,
            lineterm="",
        )
        parts.extend(line + "\n" for line in lines)
    return "".join(parts)


def excerpt(diff: str) -> str:
    """The diff's changed lines under each file's `+++` line (no context, no hunk headers), cut to
    EXCERPT_CHARS: what the trial page can show in a line of its user attrs."""
    keep = ("+", "-")
    text = "\n".join(
        line for line in diff.splitlines() if line.startswith(keep) and not line.startswith("--- ")
    )
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _log_tail(logs: Path, n: int) -> bytes | None:
    """The end of a try's log (logs/<n>.log; with repeats, its first run's logs/<n>.0.log)."""
    for name in (f"{n}.log", f"{n}.0.log"):
        try:
            with (logs / name).open("rb") as fh:
                size = fh.seek(0, 2)
                fh.seek(max(0, size - LOG_TAIL_BYTES))
                tail = fh.read()
        except FileNotFoundError:
            continue
        cut = (
            f"[the last {LOG_TAIL_BYTES // 1024} KiB of logs/{name}]\n".encode() if size > len(tail) else b""
        )
        return cut + tail
    return None


def of_try(git: Git, rec: ExperimentRecord, logs: Path, targets: Collection[str]) -> list[Artifact]:
    """A try's artifacts: diff.patch against its parent, log.txt, and each changed target file."""
    found: list[Artifact] = []
    if rec.commit and rec.parent:
        paths = changed_blobs(git, rec.parent, rec.commit)
        shas = sorted({sha for pair in paths.values() for sha in pair if sha})
        blobs = {sha: got[1] for sha, got in zip(shas, git.objects(shas), strict=True) if got}
        changes = {
            p: (blobs.get(a, b"") if a else None, blobs.get(b, b"") if b else None)
            for p, (a, b) in paths.items()
        }
        found.append(Artifact("diff", "diff.patch", unified_diff(changes).encode(), "text/x-diff"))
        for path, (_, new) in sorted(changes.items()):
            if path in targets and new is not None and len(new) <= FILE_LIMIT_BYTES:
                kind = mimetypes.guess_type(path)[0] or (
                    "text/plain" if b"\0" not in new else "application/octet-stream"
                )
                found.append(Artifact(f"file:{path}", path, new, kind))
    log = _log_tail(logs, rec.n)
    if log is not None:
        found.append(Artifact("log", "log.txt", log, "text/plain"))
    return found


# ---------------------------------------------------------------------------
# Writing them


def artifact_id(study: str, rec: ExperimentRecord, key: str) -> str:
    """A try's artifact's id: the same on every write of the same try (a repair overwrites, never adds)."""
    return str(uuid.uuid5(NAMESPACE, f"{study}\0{rec.n}\0{rec.commit}\0{key}"))


def write(store: ArtifactStore, study: str, rec: ExperimentRecord, found: list[Artifact]) -> dict[str, Any]:
    """Put a try's artifacts in the store; the trial's system attrs that name them."""
    from optuna.artifacts import ArtifactMeta

    attrs: dict[str, Any] = {}
    for art in found:
        name = artifact_id(study, rec, art.key)
        store.write(name, io.BytesIO(art.body))
        meta = ArtifactMeta(artifact_id=name, filename=art.filename, mimetype=art.mimetype, encoding=None)
        attrs[ATTR_PREFIX + name] = json.dumps(asdict(meta))
    return attrs
