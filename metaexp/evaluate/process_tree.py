"""The processes below this one, found in /proc: listing them, their memory, and killing them all.

Linux only: the supervisor, a child subreaper, uses these to find every process
a harness started, however it detached, and to end them.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time


def kill_descendants(grace_s: float, spare: frozenset[int] = frozenset()) -> None:
    """SIGTERM everything below this process but `spare` (a warm harness server and the isolation
    around it), wait up to grace_s, SIGKILL the rest, reap all."""
    _signal_all(signal.SIGTERM, spare)
    deadline = time.monotonic() + grace_s
    while _alive(spare) and (left := deadline - time.monotonic()) > 0:
        _wait_for_an_exit(min(left, 0.05), spare)
    while _alive(spare):
        _signal_all(signal.SIGKILL, spare)
        _wait_for_an_exit(0.005, spare)


def _alive(spare: frozenset[int]) -> bool:
    if not spare:
        return _reap()
    _reap()
    return any(pid not in spare and not _is_zombie(pid) for pid in descendants(os.getpid()))


def _wait_for_an_exit(timeout_s: float, spare: frozenset[int] = frozenset()) -> None:
    """Until one of the live processes below this one exits (their pidfds tell at once: a namespace
    that takes a millisecond to tear down costs a millisecond), or timeout_s; new ones are found
    by the caller's next look."""
    fds = []
    try:
        for pid in descendants(os.getpid()):
            if pid not in spare and not _is_zombie(pid):  # a zombie's pidfd is always ready
                with contextlib.suppress(OSError):  # gone already
                    fds.append(os.pidfd_open(pid))
        if fds:
            select.select(fds, [], [], timeout_s)
        else:  # only children not yet reaped: they are exiting
            time.sleep(min(timeout_s, 0.001))
    finally:
        for fd in fds:
            os.close(fd)


def _signal_all(sig: int, spare: frozenset[int] = frozenset()) -> None:
    for pid in descendants(os.getpid()):
        if pid not in spare:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def _reap() -> bool:
    """Reap exited children; True while any descendant is still alive."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    return any(not _is_zombie(pid) for pid in descendants(os.getpid())) or _has_children()


def _has_children() -> bool:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return False
    return pid == 0  # children exist but none has exited yet


def descendants(root: int) -> list[int]:
    """Every live process below `root`, walking /proc/<pid>/task/<tid>/children."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                    kids = [int(k) for k in fh.read().split()]
            except FileNotFoundError:
                if pid == root:  # a kernel without CONFIG_PROC_CHILDREN
                    return _descendants_by_scan(root)
                kids = []
            except OSError:
                kids = []
            found.extend(kids)
            todo.extend(kids)
    return found


def _descendants_by_scan(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            ppid = _ppid(int(name))
            if ppid is not None:
                children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode(errors="replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()  # fields after "pid (comm)"; comm may hold spaces


def _ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def _is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is None or fields[0] in ("Z", "X")


def rss_mb(pid: int) -> float:
    fields = _stat_fields(pid)
    return int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20 if fields else 0.0
