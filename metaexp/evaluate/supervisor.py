"""Run a harness so that nothing it starts outlives it.

One long-lived supervisor process per driver (a small `python -m
metaexp.evaluate.supervisor`, started once, in its own session) makes itself a child
subreaper (prctl) and runs each harness it is asked to, in a new session.
Every process a harness starts, even one that calls setsid() or double-forks,
stays a descendant of the supervisor or is re-parented to it, so at the end
(normal exit, timeout, memory limit or abort) the supervisor finds them all
in /proc and kills them: SIGTERM, a grace period, then SIGKILL, until none is
left. If the driver dies, the supervisor is told by the kernel (PDEATHSIG)
and by the end of its request pipe, and cleans up the same way.

Requests and replies are JSON lines on the supervisor's stdin and stdout; a
line `abort` while a harness runs stops it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from metaexp.evaluate import cgroups, warm
from metaexp.evaluate.process_tree import descendants, kill_descendants, rss_mb

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
POLL_S = 0.2  # memory checks; exit and abort are noticed at once through select


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


class Supervisor:
    """The driver's handle on its supervisor process."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner = os.getpid()

    def run(self, job: dict[str, object]) -> Supervised:
        """Run one harness. A KeyboardInterrupt meanwhile aborts it (the reply says so)."""
        proc = self._ensure()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(job).encode() + b"\n")
        proc.stdin.flush()
        while True:
            try:
                line = proc.stdout.readline()
            except KeyboardInterrupt:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.write(b"abort\n")
                    proc.stdin.flush()
                continue
            if not line:
                self.close()
                return Supervised(None, 0.0, error="the harness supervisor died; see the log")
            return Supervised(**json.loads(line))

    def close(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()  # type: ignore[union-attr]
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=10)
            self._proc = None

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "metaexp.evaluate.supervisor", str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
        return self._proc


_SUPERVISOR: Supervisor | None = None


def supervise(
    argv: list[str],
    *,
    cwd: str,
    env: dict[str, str],
    log_path: str,
    timeout_s: float,
    grace_s: float,
    memory_mb: float | None = None,
    cpus: float | None = None,
    warm: dict[str, object] | None = None,
) -> Supervised:
    """Run `argv` with its output in `log_path`, under this process's supervisor; the limits by a
    cgroup of its own where the machine allows (cgroups.py), memory by RSS polling otherwise."""
    global _SUPERVISOR
    if _SUPERVISOR is None or _SUPERVISOR._owner != os.getpid():
        _SUPERVISOR = Supervisor()
    job = {
        "argv": argv,
        "cwd": cwd,
        "env": env,
        "log_path": log_path,
        "timeout_s": timeout_s,
        "grace_s": grace_s,
        "memory_mb": memory_mb,
        "cpus": cpus,
        "warm": warm,  # {"key", "argv"}: run argv's script in a fork of that warm server
    }
    return _SUPERVISOR.run(job)


# --- the supervisor process


class _Lines:
    """Lines from a raw fd, so select() and reading never disagree about buffered data."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buf, self.eof = fd, b"", False

    def pending(self) -> bool:
        return b"\n" in self.buf or self.eof

    def fill(self) -> None:
        chunk = os.read(self.fd, 65536)
        self.eof = self.eof or not chunk
        self.buf += chunk

    def next(self) -> bytes | None:
        while not self.pending():
            self.fill()
        if b"\n" not in self.buf:
            return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line


def serve(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # the driver died: clean up and go
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)

    def abort(_signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second SIGTERM (PDEATHSIG and the
        raise _Abort  # pool's terminate) must not interrupt the cleanup below with a traceback

    signal.signal(signal.SIGTERM, abort)
    if os.getppid() != parent:
        return
    requests = _Lines(sys.stdin.fileno())
    try:
        while (line := requests.next()) is not None:
            if line.strip() in (b"", b"abort"):
                continue  # an abort that arrived after its harness had ended
            result = _run(json.loads(line), requests)
            os.write(sys.stdout.fileno(), json.dumps(asdict(result)).encode() + b"\n")
            if result.aborted and requests.eof:
                break
    except (_Abort, BrokenPipeError):  # BrokenPipeError: the driver is gone (kill -9) before the reply
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kill_descendants(1.0)  # the warm harness server too


def _run(job: dict, requests: _Lines) -> Supervised:
    if job.get("warm"):
        return _run_warm(job, requests)
    group = cgroups.limited(job["memory_mb"], job.get("cpus"))
    try:
        return _run_in(job, requests, group)
    finally:
        if group is not None:
            group.remove()


def _run_in(job: dict, requests: _Lines, group: cgroups.Group | None) -> Supervised:
    start = time.monotonic()
    fd = os.open(job["log_path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        proc = subprocess.Popen(
            job["argv"],
            cwd=job["cwd"],
            env=job["env"],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
            preexec_fn=None if group is None else group.join,  # in the group before it can fork
        )
    except (OSError, subprocess.SubprocessError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return Supervised(None, 0.0, error=f"cannot start {job['argv'][0]!r}: {why}")
    finally:
        os.close(fd)
    flags: dict[str, bool] = {}
    peak = 0.0
    polled = None if group is not None and group.memory is not None else job["memory_mb"]
    try:
        peak = _wait(proc, start + job["timeout_s"], polled, flags, requests)
    except _Abort:
        flags["aborted"] = True
    seconds = time.monotonic() - start
    kill_descendants(job["grace_s"], warm.spared())  # a warm harness server stays for its next run
    if group is not None and group.memory is not None:
        peak = group.peak_mb()
        if group.oom_killed() and not flags.get("timed_out"):
            flags["memory_exceeded"] = True
    code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    return Supervised(code, seconds, peak_rss_mb=peak, **flags)


def _run_warm(job: dict, requests: _Lines) -> Supervised:
    """A fork of the warm harness server (harness.preload; warm.py); limits by RSS polling."""
    server = warm.server_for(job["warm"]["key"], job["warm"]["argv"], job["warm"]["env"])
    if server.error:
        with open(job["log_path"], "w") as log:
            print(server.error, file=log)
        return Supervised(None, 0.0, error=server.error)
    code, seconds, flags, peak, error = server.run(job, requests)
    if error and code is None:
        return Supervised(None, seconds, error=error, **flags)
    return Supervised(code if code is not None else -signal.SIGKILL, seconds, peak_rss_mb=peak, **flags)


def _wait(
    proc: subprocess.Popen[bytes],
    deadline: float,
    memory_mb: float | None,
    flags: dict[str, bool],
    requests: _Lines,
) -> float:
    pidfd = os.pidfd_open(proc.pid)
    peak = 0.0
    try:
        while proc.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                flags["timed_out"] = True
                return peak
            if requests.pending():
                raise _Abort  # "abort", or the driver went away
            wait_s = min(left, POLL_S) if memory_mb else left
            ready, _, _ = select.select([pidfd, requests.fd], [], [], wait_s)
            if requests.fd in ready:
                requests.fill()
            if memory_mb and not ready:
                spare = warm.spared()
                rss = sum(rss_mb(pid) for pid in descendants(os.getpid()) if pid not in spare)
                peak = max(peak, rss)
                if rss > memory_mb:
                    flags["memory_exceeded"] = True
                    return peak
    finally:
        os.close(pidfd)
    return peak


if __name__ == "__main__":
    with contextlib.suppress(_Abort):  # a SIGTERM before serve() reached its try: nothing to clean
        serve(int(sys.argv[1]))
