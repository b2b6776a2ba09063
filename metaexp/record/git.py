"""Every git call metaexp makes lives here.

Commits for tries are written as loose objects directly (a blob, the trees on
the changed paths, a commit): no index, no checkout, no process per object.
Their names are hashed at once and their files written by a thread of their
own while the harness runs (record/loose_objects.py); every call here that
hands objects to git, or reads them, waits for those writes first
(flush_objects), and so does the ledger before it writes the line that names
them. Refs move only through
`git update-ref --stdin`, which locks and logs like any git command.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from metaexp.errors import WorkspaceError
from metaexp.record.cat_file import CatFile, close_pipe
from metaexp.record.loose_objects import LooseObjects

ZERO = "0" * 40


@dataclass(frozen=True)
class Entry:
    mode: str  # "100644", "100755", "120000", "40000", "160000"
    sha: str


# A ref (or packed-refs) locked by another git process (the user's `git commit` or `git gc` beside
# a run) is waited for, not a failed record: git's own lock timeouts, 10 s instead of 0.1 s and 1 s.
REF_LOCK_WAIT = ("-c", "core.filesRefLockTimeout=10000", "-c", "core.packedRefsTimeout=10000")


class Git:
    def __init__(self, cwd: Path) -> None:
        self.cwd = Path(cwd)
        self._objects: Path | None = None
        self._refs_proc: subprocess.Popen[bytes] | None = None
        self._reader: CatFile | None = None
        self._lock = threading.Lock()  # the ref writer's pipe: the ledger's writer thread uses it too
        self._loose = LooseObjects()  # the files of the objects write_object names

    def run(self, *args: str, input: bytes | None = None, check: bool = True) -> str:
        self.flush_objects()
        proc = subprocess.run(["git", *args], cwd=self.cwd, input=input, capture_output=True, env=_git_env())
        if check and proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            raise WorkspaceError(f"git {' '.join(args)} failed in {self.cwd}: {err}")
        return proc.stdout.decode(errors="replace")

    def run_bytes(self, *args: str) -> bytes:
        self.flush_objects()
        proc = subprocess.run(["git", *args], cwd=self.cwd, capture_output=True, env=_git_env())
        if proc.returncode != 0:
            raise WorkspaceError(
                f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace').strip()}"
            )
        return proc.stdout

    # --- queries

    def toplevel(self) -> Path:
        try:
            return Path(self.run("rev-parse", "--show-toplevel").strip())
        except WorkspaceError:
            raise WorkspaceError(
                f"{self.cwd} is not inside a git repository (run `git init` first)"
            ) from None

    def common_dir(self) -> Path:
        path = Path(self.run("rev-parse", "--git-common-dir").strip())
        return path if path.is_absolute() else (self.cwd / path).resolve()

    def resolve(self, rev: str) -> str | None:
        out = self.run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False).strip()
        return out or None

    def refs(self, prefix: str) -> dict[str, str]:
        out = self.run("for-each-ref", "--format=%(refname) %(objectname)", prefix)
        pairs = (line.split(" ", 1) for line in out.splitlines() if line)
        return {ref: sha for ref, sha in pairs}

    def listing(self, commit: str) -> dict[str, Entry]:
        """Every path of a commit's tree, trees included, as {path: Entry}."""
        out = self.run_bytes("ls-tree", "-r", "-t", "-z", commit)
        entries: dict[str, Entry] = {}
        for item in out.split(b"\0"):
            if item:
                meta, path = item.split(b"\t", 1)
                mode, _kind, sha = meta.decode().split(" ")
                entries[path.decode()] = Entry(mode.lstrip("0"), sha)  # trees: "40000", as stored
        return entries

    def blob(self, sha: str) -> bytes:
        return self.run_bytes("cat-file", "blob", sha)

    def objects(self, names: Iterable[str]) -> list[tuple[str, bytes] | None]:
        """Objects by name (a sha, `<commit>^{tree}`): (type, body), None for one that is missing
        (record/cat_file.py)."""
        self.flush_objects()
        if self._reader is None:
            self._reader = CatFile(self.cwd, self._objects_dir(), _git_env())
        return self._reader.objects(names)

    def diff(self, parent: str, commit: str) -> str:
        return self.run("diff", "--no-color", "--no-ext-diff", parent, commit)

    def merge(self, ours: str, theirs: str) -> tuple[str | None, list[str]]:
        """Three-way merge of two commits relative to their merge base, by git's own machinery.
        Returns the merged tree, or None and the conflicting paths."""
        self.flush_objects()
        proc = subprocess.run(
            ["git", "merge-tree", "--write-tree", "--name-only", "--no-messages", ours, theirs],
            cwd=self.cwd,
            capture_output=True,
            env=_git_env(),
        )
        lines = proc.stdout.decode(errors="replace").splitlines()
        if proc.returncode == 0 and lines:
            return lines[0].strip(), []
        if proc.returncode == 1:
            return None, [line for line in lines[1:] if line]
        raise WorkspaceError(f"git merge-tree failed: {proc.stderr.decode(errors='replace').strip()}")

    # --- objects

    def _objects_dir(self) -> Path:
        if self._objects is None:
            fmt = self.run("rev-parse", "--show-object-format", check=False).strip() or "sha1"
            if fmt != "sha1":
                raise WorkspaceError(f"repositories with object format {fmt} are not supported yet")
            self._objects = self.common_dir() / "objects"
        return self._objects

    def write_object(self, kind: str, body: bytes) -> str:
        """The object's name at once; its loose file is written by the object writer's thread."""
        data = f"{kind} {len(body)}\0".encode() + body
        sha = hashlib.sha1(data).hexdigest()
        self._loose.write(self._objects_dir() / sha[:2] / sha[2:], data)
        return sha

    def flush_objects(self) -> None:
        """Wait until every object named so far is in its file (a failed write is raised here)."""
        self._loose.flush()

    def tree_with(self, listing: Mapping[str, Entry], changes: Mapping[str, bytes]) -> str:
        """The root tree of `listing` with the files in `changes` replaced or added."""
        dirty: dict[str, dict[str, Entry]] = {}  # directory -> its entries, rebuilt
        for path, content in changes.items():
            old = listing.get(path)
            mode = old.mode if old and old.mode.startswith("100") else "100644"
            blob = Entry(mode, self.write_object("blob", content))
            _children(listing, dirty, _parent(path))[_base(path)] = blob
            folder = _parent(path)
            while folder:  # every ancestor directory must be rebuilt as well
                _children(listing, dirty, _parent(folder))
                folder = _parent(folder)
        sha = ""
        for folder in sorted(dirty, key=lambda d: d.count("/") + bool(d), reverse=True):
            sha = self.write_object("tree", _tree_body(dirty[folder]))
            if folder:  # deepest first, so the parent is rebuilt after its children
                dirty[_parent(folder)][_base(folder)] = Entry("40000", sha)
        return sha

    def commit(self, tree: str, parents: Iterable[str], message: str) -> str:
        stamp = f"{int(time.time())} +0000"
        who = "metaexp <metaexp@localhost>"
        lines = [
            f"tree {tree}",
            *(f"parent {p}" for p in parents),
            f"author {who} {stamp}",
            f"committer {who} {stamp}",
            "",
            message.rstrip("\n") + "\n",
        ]
        return self.write_object("commit", "\n".join(lines).encode())

    # --- refs

    def update_refs(self, updates: Mapping[str, str | None]) -> None:
        """Set (sha) or delete (None) several refs in one transaction.

        One `git update-ref --stdin` process stays open for the run; each call is a
        start/prepare/commit transaction in it (no process start per experiment).
        """
        if not updates:
            return
        self.flush_objects()  # git refuses a ref to an object it cannot find
        with self._lock:
            self._update_refs(updates)

    def _update_refs(self, updates: Mapping[str, str | None]) -> None:
        lines = [f"delete {ref}" if sha is None else f"update {ref} {sha}" for ref, sha in updates.items()]
        proc = self._ref_writer()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(("\n".join(["start", *lines, "prepare", "commit"]) + "\n").encode())
            proc.stdin.flush()
            replies = [proc.stdout.readline().decode().strip() for _ in range(3)]
        except (BrokenPipeError, OSError):
            replies = []
        if replies != ["start: ok", "prepare: ok", "commit: ok"]:
            self._refs_proc = None
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            raise WorkspaceError(f"git update-ref failed in {self.cwd}: {err or replies}")

    def _ref_writer(self) -> subprocess.Popen[bytes]:
        if self._refs_proc is None or self._refs_proc.poll() is not None:
            self._refs_proc = subprocess.Popen(
                ["git", *REF_LOCK_WAIT, "update-ref", "--stdin"],
                cwd=self.cwd,
                env=_git_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        return self._refs_proc

    def close(self) -> None:
        self._loose.close()
        if self._refs_proc is not None:
            close_pipe(self._refs_proc)
            self._refs_proc = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GIT_AUTHOR_NAME", "metaexp")
    env.setdefault("GIT_AUTHOR_EMAIL", "metaexp@localhost")
    env.setdefault("GIT_COMMITTER_NAME", "metaexp")
    env.setdefault("GIT_COMMITTER_EMAIL", "metaexp@localhost")
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _base(path: str) -> str:
    return path.rpartition("/")[2]


def _children(
    listing: Mapping[str, Entry], dirty: dict[str, dict[str, Entry]], folder: str
) -> dict[str, Entry]:
    if folder not in dirty:
        prefix = f"{folder}/" if folder else ""
        dirty[folder] = {
            path[len(prefix) :]: entry
            for path, entry in listing.items()
            if path.startswith(prefix) and "/" not in path[len(prefix) :]
        }
    return dirty[folder]


def _tree_body(entries: Mapping[str, Entry]) -> bytes:
    # git sorts tree entries by name, comparing a directory as if its name ended in "/"
    def key(name: str) -> bytes:
        return (name + "/" if entries[name].mode == "40000" else name).encode()

    return b"".join(
        f"{entries[name].mode} {name}".encode() + b"\0" + bytes.fromhex(entries[name].sha)
        for name in sorted(entries, key=key)
    )
