"""Reusing sandbox trees: a tree goes back to the process that built it for its next evaluation
only if a scan finds it exactly as built (the same folders, links and their targets, files,
permission bits and link counts, no extended attributes, no folder's or link's change time
moved, nothing added), and its target files are then rewritten in place; anything else discards
it and the caller builds a fresh one, as before. On filesystems whose inode allocator skips
recently freed inodes (ext4 without a journal scans every inode freed in the last minutes), a
tree built and deleted per evaluation made every file the loop created slower as a run went on.

Trees are named PID-UUID; opening a folder of trees discards those of processes that are gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class Trees:
    """The sandbox trees of one base in this process: in use, or idle and waiting for reuse."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        _discard_orphans(folder)
        self._in_use: dict[Path, _Built] = {}
        self._idle: list[_Built] = []
        weakref.finalize(self, _discard_idle, self._idle)

    def built(self, box: Path, files: Mapping[str, bytes], bound: bool) -> None:
        """`box` was just built with `files` (`bound`: the base bound in by the isolation)."""
        self._in_use[box] = _Built(box, frozenset(files), bound, _scan(box))

    def release(self, box: Path) -> None:
        """The evaluation in `box` is over (no process of it is left): the tree waits for the next
        one, which takes it only if a scan then finds it as it was built; a named one is discarded."""
        built = self._in_use.pop(box, None)
        if built is None:
            discard(box)
        else:
            self._idle.append(built)

    def path(self, name: str | None = None) -> Path:
        """Where a new tree goes: `name`, or PID-UUID (how _discard_orphans knows its process)."""
        return self.folder / (name or f"{os.getpid()}-{uuid.uuid4().hex}")

    def reuse(self, files: Mapping[str, bytes], bound: bool) -> Path | None:
        """An idle tree built for the same target files, as built, with `files` written into it;
        None when there is none (each idle tree that does not qualify is discarded)."""
        while self._idle:
            built = self._idle.pop()
            if (built.files, built.bound) != (frozenset(files), bound) or not self._as_built(built):
                discard(built.box)  # other targets, or the last harness left something behind
                continue
            for path, content in files.items():
                _rewrite(built.box / path, content)
            self._in_use[built.box] = built
            return built.box
        return None

    def _as_built(self, built: _Built) -> bool:
        try:
            return _scan(built.box) == built.layout
        except OSError:  # gone, or unreadable
            return False


_Layout = dict[str, tuple[object, ...]]


@dataclass(frozen=True)
class _Built:
    box: Path
    files: frozenset[str]
    bound: bool
    layout: _Layout


def _scan(box: Path) -> _Layout:
    """Every entry of the tree by its path: kind, permission bits, link count (a hard link out of
    the tree would let a later write reach past it), a symlink's target, and what could carry a
    message to the next candidate: extended attributes, and a folder's or link's change time (any
    utime or chmod moves it; a file's times are reset when it is rewritten)."""
    layout: _Layout = {}
    pending = [""]
    while pending:
        rel = pending.pop()
        path = os.path.join(box, rel)
        st = os.lstat(path)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFLNK:
            layout[rel] = (kind, os.readlink(path), st.st_ctime_ns)
            continue
        xattrs = tuple(sorted(os.listxattr(path, follow_symlinks=False)))
        links_or_time = st.st_ctime_ns if kind == stat.S_IFDIR else st.st_nlink
        layout[rel] = (kind, stat.S_IMODE(st.st_mode), links_or_time, xattrs)
        if kind == stat.S_IFDIR:
            pending.extend(os.path.join(rel, entry) for entry in os.listdir(path))
    return layout


def _rewrite(path: Path, content: bytes) -> None:
    """`content` into the file in place (the same inode: nothing freed), then cut to its length.
    Not O_TRUNC: ext4 flushes a file truncated to zero and rewritten when it is closed
    (auto_da_alloc), which stalled an evaluation for up to a quarter of a second on a busy disk."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
        fh.flush()
        os.ftruncate(fd, len(content))
        os.utime(fd)  # access and modification time: now, whatever the last harness set


def _discard_orphans(trees: Path) -> None:
    """Trees left by processes that are gone (killed before they could discard their idle ones)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(trees):
            pid = entry.name.partition("-")[0]
            if pid.isdigit() and not _alive(int(pid)):
                discard(Path(entry.path))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's
        return True
    return True


def _discard_idle(idle: list[_Built]) -> None:
    while idle:
        discard(idle.pop().box)


def discard(box: Path) -> None:
    if box.exists():
        make_writable(box)
        shutil.rmtree(box, ignore_errors=True)


def make_writable(folder: Path) -> None:
    if folder.exists():
        for dirpath, _dirs, _files in os.walk(folder):
            os.chmod(dirpath, 0o755)
