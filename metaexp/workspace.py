"""Where a run works: its outputs, lock, worktree, frozen base and per-try sandboxes.

The user's checkout is never touched. The run's branch lives in its own git
worktree; the harness runs in a sandbox: a fresh directory whose unchanged
files are hard links to a frozen, read-only copy of the start commit (the
base), with the candidate's target files written in. A harness that writes
through a link to a base file (possible as root) is caught after the run by a
stat check and the base file is restored from git.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import io
import json
import os
import shutil
import stat
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from metaexp.errors import LockError, WorkspaceError
from metaexp.git import Entry, Git

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
        self.branch = f"refs/heads/autoexp/{tag}"
        self.refs_prefix = f"refs/metaexp/{tag}"
        self.worktree = self.out / "worktree"
        self.base = self.out / "base"
        self._lock_fd: int | None = None
        self._manifest: dict[str, tuple[int, int, int]] = {}
        self._base_listing: dict[str, Entry] = {}

    # --- outputs and lock

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
            Git(self.worktree).run("reset", "--hard", "--quiet")

    # --- the frozen base and sandboxes

    def prepare_base(self, start: str, listing: Mapping[str, Entry], targets: list[str]) -> None:
        """A read-only copy of the start commit without its target files, reused across runs."""
        shared = {p: e for p, e in listing.items() if e.mode != "40000" and not matches(p, targets)}
        self._base_listing = shared
        stamp = self.out / "base.json"
        fresh = stamp.exists() and json.loads(stamp.read_text()) == {"commit": start, "targets": targets}
        if not fresh:
            self._make_writable(self.base)
            shutil.rmtree(self.base, ignore_errors=True)
            self.base.mkdir(parents=True)
            with tarfile.open(
                fileobj=io.BytesIO(self.git.run_bytes("archive", "--format=tar", start))
            ) as tar:
                members = [m for m in tar.getmembers() if m.name in shared or m.isdir()]
                tar.extractall(self.base, members=members, filter="tar")
            for path in shared:
                self._freeze(self.base / path)
            stamp.write_text(json.dumps({"commit": start, "targets": targets}))
        self._manifest = {p: self._signature(self.base / p) for p in shared}

    def sandbox(self, name: str, files: Mapping[str, bytes]) -> Path:
        """A fresh tree: base files linked in, `files` written as real files."""
        box = self.out / "sandbox" / name
        self.discard_sandbox(box)
        box.mkdir(parents=True)
        for folder in sorted({os.path.dirname(p) for p in [*self._manifest, *files]} - {""}):
            (box / folder).mkdir(parents=True, exist_ok=True)
        for path in self._manifest:
            dest = box / path
            src = self.base / path
            if src.is_symlink():
                os.symlink(os.readlink(src), dest)
            else:
                os.link(src, dest)
        for path, content in files.items():
            (box / path).write_bytes(content)
        return box

    def discard_sandbox(self, box: Path) -> None:
        if box.exists():
            self._make_writable(box)
            shutil.rmtree(box, ignore_errors=True)

    def restore_shared(self) -> list[str]:
        """Base files a harness changed since they were frozen; each is restored from git."""
        changed = [p for p, sig in self._manifest.items() if self._signature(self.base / p) != sig]
        for path in changed:
            dest = self.base / path
            if dest.exists() or dest.is_symlink():
                dest.unlink()  # needs only the folder writable, not the file
            dest.parent.mkdir(parents=True, exist_ok=True)
            entry = self._base_listing[path]
            content = self.git.blob(entry.sha)
            if entry.mode == "120000":
                os.symlink(content.decode(), dest)
            else:
                dest.write_bytes(content)
                if entry.mode == "100755":
                    os.chmod(dest, 0o755)
                self._freeze(dest)
            self._manifest[path] = self._signature(dest)
        return changed

    @staticmethod
    def _signature(path: Path) -> tuple[int, int, int]:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return (-1, -1, -1)
        return (st.st_size, st.st_mtime_ns, st.st_mode)

    @staticmethod
    def _freeze(path: Path) -> None:
        if not path.is_symlink():
            mode = path.stat().st_mode
            path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))

    @staticmethod
    def _make_writable(folder: Path) -> None:
        if not folder.exists():
            return
        for dirpath, _dirs, _files in os.walk(folder):
            os.chmod(dirpath, 0o755)

    def check_start(self, start: str) -> str:
        sha = self.git.resolve(start)
        if sha is None:
            raise WorkspaceError(f"start: {start!r} is not a commit, branch or tag in {self.root}")
        return sha
