"""git's object writer: a try's loose object files, written by a thread of their own.

A try's objects (a blob, the trees on the changed paths, a commit) are named by their hash at
once; their files are written here while the harness runs, since creating a file costs ~1 ms on a
filesystem that scans recently freed inodes (ext4 without a journal). One thread writes them in
order, so an object asked for twice is written once (the second finds the file). Whoever hands
objects to git, or reads them, calls flush() first (record/git.py does, for every call).
"""

from __future__ import annotations

import itertools
import os
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

_TMP_NAMES = itertools.count()  # a loose object's temporary file: tmp_obj_<pid>_<n>, renamed into place


class LooseObjects:
    def __init__(self) -> None:
        self._writes: list[Future[None]] = []  # the files not yet known to be written
        self._lock = threading.Lock()  # the ledger's writer thread flushes too
        self._thread: ThreadPoolExecutor | None = None

    def write(self, path: Path, data: bytes) -> None:
        """Write the object `data` (header and body) to its loose file `path`, in the thread."""
        with self._lock:
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="git objects")
            self._writes.append(self._thread.submit(self._store, path, data))

    def flush(self) -> None:
        """Wait until every object written so far is in its file; a failed write is raised here."""
        with self._lock:
            writes, self._writes = self._writes, []
        for write in writes:
            write.result()

    def close(self) -> None:
        self.flush()
        if self._thread is not None:
            self._thread.shutdown()
            self._thread = None

    @staticmethod
    def _store(path: Path, data: bytes) -> None:
        """In the thread: the loose object file, unless it is there already."""
        if path.exists():
            return
        path.parent.mkdir(exist_ok=True)
        tmp = path.parent / f"tmp_obj_{os.getpid()}_{next(_TMP_NAMES)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o444)
        with os.fdopen(fd, "wb") as fh:
            fh.write(zlib.compress(data, 1))
        os.replace(tmp, path)
