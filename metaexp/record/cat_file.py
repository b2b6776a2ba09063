"""git's object reader: a loose object (every object a try writes) from its file, the rest through
one `git cat-file --batch` process that stays open for the run, as the ref writer does (a round
trip on a pipe, not a process start)."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import zlib
from collections.abc import Iterable
from pathlib import Path

from metaexp.errors import WorkspaceError

HEX = set("0123456789abcdef")


class CatFile:
    def __init__(self, cwd: Path, objects_dir: Path, env: dict[str, str]) -> None:
        self.cwd, self.objects_dir, self.env = cwd, objects_dir, env
        self._cat_proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one pipe: the ledger's writer thread reads through it too

    def objects(self, names: Iterable[str]) -> list[tuple[str, bytes] | None]:
        """Objects by name (a sha, `<commit>^{tree}`): (type, body), None for one that is missing.

        A loose object (every object a try writes) is read from its file; the rest through one
        `git cat-file --batch` process that stays open for the run, as the ref writer does: a
        round trip on a pipe, not a process start. Asked in chunks, so neither pipe fills while
        the other waits.
        """
        names = list(names)
        found = [self._loose(name) if len(name) == 40 and set(name) <= HEX else None for name in names]
        rest = [i for i, got in enumerate(found) if got is None]
        for start in range(0, len(rest), 64):
            chunk = rest[start : start + 64]
            for i, got in zip(chunk, self._batch([names[i] for i in chunk]), strict=True):
                found[i] = got
        return found

    def _loose(self, sha: str) -> tuple[str, bytes] | None:
        try:
            data = zlib.decompress((self.objects_dir / sha[:2] / sha[2:]).read_bytes())
        except (OSError, zlib.error):  # packed, in an alternate, or not a sha at all
            return None
        head, _, body = data.partition(b"\0")
        kind, _, size = head.decode(errors="replace").partition(" ")
        return (kind, body) if size.isdigit() and int(size) == len(body) else None

    def _batch(self, names: list[str]) -> list[tuple[str, bytes] | None]:
        with self._lock:
            return self._batch_locked(names)

    def _batch_locked(self, names: list[str]) -> list[tuple[str, bytes] | None]:
        proc = self._cat_file()
        assert proc.stdin is not None and proc.stdout is not None
        found: list[tuple[str, bytes] | None] = []
        try:
            proc.stdin.write("".join(f"{name}\n" for name in names).encode())
            proc.stdin.flush()
            for _ in names:
                line = proc.stdout.readline()
                if not line:
                    raise OSError("it exited")
                head = line.decode().split()
                if len(head) != 3:  # "<name> missing" (or ambiguous)
                    found.append(None)
                    continue
                body = proc.stdout.read(int(head[2]) + 1)[:-1]  # the body, then a newline
                found.append((head[1], body))
        except (OSError, ValueError) as exc:
            close_pipe(proc)
            self._cat_proc = None
            raise WorkspaceError(f"git cat-file --batch failed in {self.cwd}: {exc}") from None
        return found

    def _cat_file(self) -> subprocess.Popen[bytes]:
        if self._cat_proc is None or self._cat_proc.poll() is not None:
            self._cat_proc = subprocess.Popen(
                ["git", "cat-file", "--batch"],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        return self._cat_proc

    def close(self) -> None:
        if self._cat_proc is not None:
            close_pipe(self._cat_proc)
            self._cat_proc = None


def close_pipe(proc: subprocess.Popen[bytes]) -> None:
    """Close a long-lived git process's stdin, wait for it (kill after 10 s), close its pipes."""
    with contextlib.suppress(OSError):
        proc.stdin.close()  # type: ignore[union-attr]
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
