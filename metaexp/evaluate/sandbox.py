"""The frozen base tree and per-evaluation sandboxes, on any node.

A base is the files every candidate shares (the start commit without its
target files), shipped as tar bytes and unpacked once per node into a
read-only tree, verified by content whenever a run opens it. A sandbox is a
fresh directory whose target files are real files and whose base files are
bound read-only by the isolation (isolation.py), or without it symlinks into
the base (nothing big is copied per evaluation). A harness that writes through
a link anyway (root ignores read-only modes) is caught after the run by a
stat check that includes ctime (os.utime cannot reset it), and the base file
is restored from the tar.

Trees are reused where a scan finds them as built (trees.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from metaexp.evaluate.trees import Trees, discard, make_writable

_STAMP = ".metaexp-base"  # holds the key of the tar a base was unpacked from


class BaseTree:
    def __init__(self, root: Path, tar: bytes, key: str) -> None:
        """Unpack `tar` into `root` unless it already holds that key (one process at a time)."""
        self.root, self.key = Path(root), key
        self._tar = tar
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            self._members = {m.name: m for m in archive.getmembers() if not m.isdir()}
            self._digests = {m.name: _digest(archive, m) for m in self._members.values()}
        with _locked(self.root.parent / f"{self.root.name}.lock"):
            if _read(self.root / _STAMP) != key:
                self._unpack()
            self.tampered = self._verify()  # by content: a resumed run trusts no size or time
        self._manifest = {name: _signature(self.root / name) for name in self._members}
        self._folders = sorted({os.path.dirname(name) for name in self._members} - {""})
        self._trees = Trees(self.root.parent / f"{self.root.name}-sandboxes")

    def _verify(self) -> list[str]:
        """Files whose content is not what was frozen (each is restored from the tar)."""
        bad = [name for name, digest in self._digests.items() if _file_digest(self.root / name) != digest]
        if bad:
            with tarfile.open(fileobj=io.BytesIO(self._tar)) as tar:
                for name in bad:
                    self._extract(tar, name)
        return bad

    def _extract(self, tar: tarfile.TarFile, name: str) -> None:
        dest = self.root / name
        if dest.exists() or dest.is_symlink():
            dest.unlink()  # needs only the folder writable, not the file
        dest.parent.mkdir(parents=True, exist_ok=True)
        tar.extract(self._members[name], self.root, filter="tar")
        _freeze(dest)

    def _unpack(self) -> None:
        make_writable(self.root)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(self._tar)) as tar:
            tar.extractall(self.root, filter="tar")
            for member in tar.getmembers():
                if member.isfile():
                    _freeze(self.root / member.name)
        (self.root / _STAMP).write_text(self.key)

    @property
    def tar(self) -> bytes:
        """The base as it travels to other nodes (unpacked there once per key)."""
        return self._tar

    def sandbox(self, files: Mapping[str, bytes], name: str | None = None, bound: bool = False) -> Path:
        """A fresh tree beside the base: `files` written as real files, base files as symlinks into
        the base (creating them leaves the base's inodes, ctime included, alone), or, `bound`, left
        for the isolation to bind read-only (only the base's own symlinks are made). Without `name`,
        a tree released earlier is reused where a scan finds it still exactly as built.
        """
        if name is None and (box := self._trees.reuse(files, bound)) is not None:
            return box
        box = self._trees.path(name)
        discard(box)
        box.mkdir(parents=True)
        for folder in sorted({*self._folders, *(os.path.dirname(p) for p in files)} - {""}):
            (box / folder).mkdir(parents=True, exist_ok=True)
        for path in self._manifest:
            if path in files:
                continue
            src = self.root / path
            if src.is_symlink():
                os.symlink(os.readlink(src), box / path)
            elif not bound:
                os.symlink(src, box / path)
            else:  # the mount point the isolation binds the file onto (made here, not by bwrap, so
                (box / path).touch()  # that a reused tree is as it was built after its first run)
        for path, content in files.items():
            (box / path).write_bytes(content)
        if name is None:
            self._trees.built(box, files, bound)
        return box

    def release(self, box: Path) -> None:
        """The evaluation in `box` is over (no process of it is left): see Trees.release."""
        self._trees.release(box)

    def frozen_files(self) -> dict[str, Path]:
        """Every regular base file by its path in a sandbox tree: what the isolation binds read-only."""
        return {name: self.root / name for name, m in self._members.items() if not m.issym()}

    def restore_shared(self) -> list[str]:
        """Base files changed since they were frozen (size, times, mode, inode: `os.utime` cannot
        hide a write, which moves ctime); each is restored from the tar."""
        changed = [p for p, sig in self._manifest.items() if _signature(self.root / p) != sig]
        if not changed:
            return []
        with (
            _locked(self.root.parent / f"{self.root.name}.lock"),
            tarfile.open(fileobj=io.BytesIO(self._tar)) as tar,
        ):
            for path in changed:
                self._extract(tar, path)
                self._manifest[path] = _signature(self.root / path)
        return changed


def base_tar(files: Mapping[str, tuple[str, bytes]]) -> bytes:
    """A tar of {path: (git mode, content)}: the form a base travels in."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(files):
            mode, content = files[path]
            info = tarfile.TarInfo(path)
            if mode == "120000":
                info.type, info.linkname = tarfile.SYMTYPE, content.decode()
            else:
                info.size, info.mode = len(content), 0o755 if mode == "100755" else 0o644
            tar.addfile(info, None if mode == "120000" else io.BytesIO(content))
    return buffer.getvalue()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _signature(path: Path) -> tuple[int, ...]:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return (-1,)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_ino)


def _digest(archive: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    if member.issym():
        return "link:" + member.linkname
    data = archive.extractfile(member)
    return hashlib.sha256(data.read() if data is not None else b"").hexdigest()


def _file_digest(path: Path) -> str:
    if path.is_symlink():
        return "link:" + os.readlink(path)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _freeze(path: Path) -> None:
    if not path.is_symlink():
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
