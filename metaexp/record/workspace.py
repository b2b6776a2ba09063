"""Where a run works: its outputs, lock, worktree and frozen base (see sandbox.py).

The user's checkout is never touched: the run's branch lives in its own git
worktree, and harnesses run in sandboxes over a read-only copy of the start
commit's shared files.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from metaexp.errors import LockError
from metaexp.evaluate.sandbox import BaseTree, base_tar
from metaexp.record import refs
from metaexp.record.git import Entry, Git

_LOCKS: list[int] = []  # lock fds, closed in forked children so a harness never holds them


def _close_locks_in_child() -> None:
    for fd in _LOCKS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _LOCKS.clear()  # the numbers may be reused in this child: never close them twice


os.register_at_fork(after_in_child=_close_locks_in_child)


def matches(path: str, patterns: Iterable[str]) -> bool:
    """fnmatch-style globs on repo-relative POSIX paths ('*' also crosses '/')."""
    return any(path == p or fnmatch.fnmatchcase(path, p) for p in patterns)


class Workspace:
    def __init__(self, spec_root: Path, tag: str) -> None:
        self.git = Git(spec_root)
        self.root = self.git.toplevel()
        self.git = Git(self.root)
        self.tag = tag
        self.out = self.root / ".metaexp" / tag
        self.branch = refs.branch(tag)  # a single lineage's (record/refs.py names both layouts)
        self.refs_prefix = refs.prefix(tag)
        self.worktree = self.out / "worktree"
        self.base = self.out / "base"
        self._lock_fd: int | None = None
        self.base_tree: BaseTree | None = None

    # --- outputs and lock

    @property
    def stopped(self) -> Path:
        """Why the run's last session stopped (written at its end, removed while one runs)."""
        return self.out / "stopped.json"

    def stopped_at(self, reason: str, aborted: bool, when: str) -> None:
        self.stopped.write_text(json.dumps({"reason": reason, "aborted": aborted, "at": when}) + "\n")

    def last_stop(self) -> str | None:
        """ "stopped <when>: <reason>" of the last session, or None (one runs now, or was killed)."""
        try:
            stop = json.loads(self.stopped.read_text())
            return f"stopped {stop['at']}: {stop['reason']}"
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def open(self) -> None:
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        self._exclude_outputs()
        self._lock()

    def close(self) -> None:
        if self._lock_fd is not None:
            _LOCKS.remove(self._lock_fd)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _exclude_outputs(self) -> None:
        exclude = self.git.common_dir() / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        text = exclude.read_text() if exclude.exists() else ""
        if ".metaexp/" not in text.split("\n"):
            with exclude.open("a") as fh:
                fh.write(("" if text.endswith("\n") or not text else "\n") + ".metaexp/\n")

    def _lock(self) -> None:
        path = self.out / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise LockError(
                f"another metaexp run with tag {self.tag!r} is running (pid {holder}); "
                "wait for it, stop it, or use another tag"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        _LOCKS.append(fd)

    # --- branch and worktree

    def ensure_worktree(self, start: str) -> None:
        """The run's worktree on autoexp/<tag>; created from `start` the first time."""
        if (self.worktree / ".git").exists():
            return
        # Runs of one repository (a parallel study's) add worktrees at once: one's prune removes
        # another's half-made admin folder, and two adds race for the same name (worktreeN), so
        # both happen under one lock per repository.
        lock = self.root / ".metaexp" / ".worktrees.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            self._add_worktree(start)

    def _add_worktree(self, start: str) -> None:
        self.git.run("worktree", "prune")
        if self.git.resolve(self.branch):
            self.git.run(
                "worktree", "add", "--quiet", str(self.worktree), self.branch.removeprefix("refs/heads/")
            )
        else:
            self.git.run(
                "worktree",
                "add",
                "--quiet",
                "-b",
                self.branch.removeprefix("refs/heads/"),
                str(self.worktree),
                start,
            )

    def sync_worktree(self) -> None:
        """After the branch moved (update-ref), make the worktree's files match it."""
        if (self.worktree / ".git").exists():
            self.git.flush_objects()  # the objects the branch now names (another Git writes none)
            Git(self.worktree).run("reset", "--hard", "--quiet")

    # --- the frozen base

    def prepare_base(self, start: str, listing: Mapping[str, Entry], targets: list[str]) -> BaseTree:
        """The start commit without its target files, as tar bytes and a read-only tree here."""
        shared = {
            p: e for p, e in listing.items() if e.mode not in ("40000", "160000") and not matches(p, targets)
        }
        blobs = json.dumps({p: e.sha for p, e in sorted(shared.items())}).encode()
        key = hashlib.sha256(blobs).hexdigest()[:16]
        tar = self.out / "base.tar"
        data = tar.read_bytes() if tar.exists() and (self.out / "base.key").read_text() == key else b""
        if not (data and _holds(data, shared)):  # the tar is checked against git, never trusted
            data = base_tar({p: (e.mode, self.git.blob(e.sha)) for p, e in shared.items()})
            tar.write_bytes(data)
            (self.out / "base.key").write_text(key)
        self.base_tree = BaseTree(self.base, data, key)
        return self.base_tree


def _holds(data: bytes, shared: Mapping[str, Entry]) -> bool:
    """Whether a base tar holds exactly the blobs git lists (by their git hashes)."""
    algorithm = "sha256" if any(len(e.sha) == 64 for e in shared.values()) else "sha1"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        found = {}
        for member in tar.getmembers():
            if member.issym():
                content = member.linkname.encode()
            else:
                fh = tar.extractfile(member)
                content = fh.read() if fh is not None else b""
            found[member.name] = hashlib.new(algorithm, b"blob %d\0" % len(content) + content).hexdigest()
    return found == {p: e.sha for p, e in shared.items()}
