"""Run a harness so that nothing it starts outlives it.

A forked supervisor makes itself a child subreaper (prctl), starts the harness
in a new session and waits for it. Every process the harness starts, even one
that calls setsid() or double-forks, stays a descendant of the supervisor or
is re-parented to it, so at the end (normal exit, timeout, memory limit or
abort) the supervisor can find them all in /proc and kill them: SIGTERM, a
grace period, then SIGKILL, until none is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
POLL_S = 0.2  # memory checks; exit is noticed at once through a pidfd


@dataclass(frozen=True)
class Supervised:
    returncode: int | None  # negative: killed by that signal; None: could not start
    seconds: float  # from the harness's start to its exit or kill
    timed_out: bool = False
    memory_exceeded: bool = False
    aborted: bool = False
    peak_rss_mb: float = 0.0
    error: str = ""  # why it could not start


class _Abort(Exception):
    pass


def supervise(
    argv: list[str],
    *,
    cwd: str,
    env: dict[str, str],
    log_fd: int,
    timeout_s: float,
    grace_s: float,
    memory_mb: float | None = None,
) -> Supervised:
    """Run `argv` under a forked supervisor. A KeyboardInterrupt while it runs aborts it:
    the tree is killed and the result says `aborted`."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the supervisor
        os.close(rfd)
        code = 0
        try:
            result = _supervise_child(argv, cwd, env, log_fd, timeout_s, grace_s, memory_mb)
            os.write(wfd, json.dumps(result.__dict__).encode())
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    os.close(wfd)
    try:
        data = _read_all(rfd, pid)
    finally:
        os.close(rfd)
        os.waitpid(pid, 0)
    if not data:
        return Supervised(None, 0.0, error="the supervisor died without a report")
    return Supervised(**json.loads(data))


def _read_all(fd: int, pid: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except KeyboardInterrupt:
            os.kill(pid, signal.SIGTERM)  # the supervisor kills the tree and reports
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _supervise_child(
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    log_fd: int,
    timeout_s: float,
    grace_s: float,
    memory_mb: float | None,
) -> Supervised:
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle

    def abort(_signum: int, _frame: object) -> None:
        raise _Abort

    signal.signal(signal.SIGTERM, abort)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # the driver was SIGKILLed: clean up
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    if os.getppid() != parent:
        raise _Abort
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            start_new_session=True,
            preexec_fn=_default_sigint,  # ignored signals survive exec; the harness gets a normal SIGINT
        )
    except OSError as exc:
        return Supervised(None, 0.0, error=f"cannot start {argv[0]!r}: {exc.strerror or exc}")
    flags: dict[str, bool] = {}
    peak = 0.0
    try:
        peak = _wait(proc, start + timeout_s, memory_mb, flags)
    except _Abort:
        flags["aborted"] = True
    seconds = time.monotonic() - start
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    kill_descendants(grace_s)
    return Supervised(
        proc.returncode if proc.returncode is not None else -signal.SIGKILL,
        seconds,
        peak_rss_mb=peak,
        **flags,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait(
    proc: subprocess.Popen[bytes], deadline: float, memory_mb: float | None, flags: dict[str, bool]
) -> float:
    pidfd = os.pidfd_open(proc.pid)
    peak = 0.0
    try:
        while proc.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                flags["timed_out"] = True
                return peak
            ready, _, _ = select.select([pidfd], [], [], min(left, POLL_S) if memory_mb else left)
            if memory_mb and not ready:
                rss = sum(rss_mb(pid) for pid in descendants(os.getpid()))
                peak = max(peak, rss)
                if rss > memory_mb:
                    flags["memory_exceeded"] = True
                    return peak
    finally:
        os.close(pidfd)
    return peak


def kill_descendants(grace_s: float) -> None:
    """SIGTERM everything below this process, wait up to grace_s, SIGKILL the rest, reap all."""
    _signal_all(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _reap() and time.monotonic() < deadline:
        time.sleep(0.01)
    while _reap():
        _signal_all(signal.SIGKILL)
        time.sleep(0.005)


def _signal_all(sig: int) -> None:
    for pid in descendants(os.getpid()):
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
