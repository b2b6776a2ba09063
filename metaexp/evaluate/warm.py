"""The supervisor's side of the warm harness server (forkserver.py): start it once per preload list
and isolation, hand it each run (the request, the log's descriptor), and wait for the fork under
the same timeout, memory limit, abort and kill as a plain harness. Everything below the supervisor
but the server (and the isolation around it) is the run's to kill, so the processes a fork starts,
detached or not, end with it; the server lives on for the next run.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import time
from typing import Any

from metaexp.evaluate.process_tree import descendants, kill_descendants, rss_mb

POLL_S = 0.2  # memory checks, as for a plain harness
START_S = 120.0  # at most for the server's imports


class WarmServer:
    def __init__(self, key: str, argv: list[str], env: dict[str, str]) -> None:
        """Start the server with the harness's environment (the allow-list: never the driver's)."""
        self.key = key
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [a.replace("{fd}", str(theirs.fileno())) for a in argv]
        self.proc = subprocess.Popen(
            command,
            pass_fds=[theirs.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        theirs.close()
        self.error = ""
        reply = self._receive(START_S)
        if reply is None or "error" in reply:
            why = (reply or {}).get("error") or self._stderr() or "it exited before it was ready"
            self.error = f"the warm harness server did not start: {why}"
            self.close()
            return
        self.spare = frozenset({self.proc.pid, *_children(self.proc.pid)})  # bwrap and the server

    @property
    def alive(self) -> bool:
        return not self.error and self.proc.poll() is None

    Result = tuple[int | None, float, dict[str, bool], float, str]

    def run(self, job: dict[str, Any], requests: Any) -> Result:
        """(exit code, seconds, flags, peak RSS MB, error) of one fork running `job`'s script;
        `requests`: the supervisor's request lines (an abort arrives there)."""
        start = time.monotonic()
        fd = os.open(job["log_path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        request = {"argv": job["argv"], "cwd": job["cwd"], "env": job["env"]}
        try:
            socket.send_fds(self.sock, [json.dumps(request).encode()], [fd])
        except OSError as exc:
            self.error = f"the warm harness server is gone ({exc})"
            return None, 0.0, {}, 0.0, self.error
        finally:
            os.close(fd)
        flags: dict[str, bool] = {}
        peak, code = 0.0, None
        deadline, memory_mb = start + job["timeout_s"], job["memory_mb"]
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                flags["timed_out"] = True
                break
            if requests.pending():  # "abort", or the driver went away
                flags["aborted"] = True
                break
            wait_s = min(left, POLL_S) if memory_mb else left
            ready, _, _ = select.select([self.sock, requests.fd], [], [], wait_s)
            if requests.fd in ready:
                requests.fill()
                continue
            if ready:
                reply = self._receive(0)
                if reply is None:
                    self.error = "the warm harness server died during the run"
                    break
                if "exit" in reply:
                    code = reply["exit"]
                    break
                continue  # {"pid": ...}
            if memory_mb:
                rss = sum(rss_mb(p) for p in descendants(os.getpid()) if p not in self.spare)
                peak = max(peak, rss)
                if rss > memory_mb:
                    flags["memory_exceeded"] = True
                    break
        seconds = time.monotonic() - start
        kill_descendants(job["grace_s"], self.spare)
        if code is None and not self.error:  # killed: the server reports the fork's end
            reply = self._receive(job["grace_s"] + 5.0)
            code = reply.get("exit") if reply else None
            if reply is None:
                self.error = "the warm harness server did not report the killed run"
        return code, seconds, flags, peak, self.error

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def _receive(self, timeout_s: float) -> dict[str, Any] | None:
        ready, _, _ = select.select([self.sock], [], [], timeout_s)
        if not ready:
            return None if timeout_s else {}
        try:
            data = self.sock.recv(65536)
        except OSError:
            return None
        return json.loads(data) if data else None

    def _stderr(self) -> str:
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
            assert self.proc.stderr is not None
            return " ".join(self.proc.stderr.read().decode(errors="replace").split())[-300:]
        return ""


_SERVER: WarmServer | None = None


def server_for(key: str, argv: list[str], env: dict[str, str]) -> WarmServer:
    """The supervisor's one server for this key (preload list and isolation); a new one when the
    key changes or the last one died."""
    global _SERVER
    if _SERVER is not None and (_SERVER.key != key or not _SERVER.alive):
        _SERVER.close()
        _SERVER = None
    if _SERVER is None:
        _SERVER = WarmServer(key, argv, env)
    return _SERVER


def spared() -> frozenset[int]:
    """The processes a plain harness's kill must leave alone: the warm server, if one runs."""
    return _SERVER.spare if _SERVER is not None and _SERVER.alive else frozenset()


def _children(pid: int) -> list[int]:
    """The server itself when `pid` is the isolation around it (bwrap, unshare), else nothing."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            kids = [int(k) for k in fh.read().split()]
    except OSError:
        return []
    return kids
