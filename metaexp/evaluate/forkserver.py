"""The warm harness server (`harness.preload`): one long-lived Python per supervisor imports the
listed modules once; each evaluation is a fresh fork() of it that runs the harness's script (a
command `python SCRIPT.py ARGS...`) as `python` runs a script, in the candidate's tree, with its
environment and its log as stdout and stderr.

The server runs inside the same isolation as a plain harness (isolation.wrap_server: bubblewrap,
the server as PID 1 of its namespace, so orphans come back to it and the namespace dies with it)
but its view must serve every evaluation: the sandbox trees' folder writable and the frozen base
read-only (the trees link into it). The supervisor sends each request over a Unix socket with the
log's file descriptor attached (SCM_RIGHTS: the log folder stays outside the view), and kills what
a fork started at the timeout exactly as for a plain harness (every process below the server).

What a fork inherits: the preloaded modules as the server imported them (their module globals too:
a preloaded module that keeps state between calls can leak it from one candidate to the next; the
target files and everything else are imported fresh in each fork, and nothing a fork does reaches
the server or the next fork). A candidate shares the server's sandbox with the candidates before
it; use preload for cheap evaluations of code you would run in one sandbox anyway.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
import sys
import traceback
import types

MESSAGE = 65536  # the largest request (argv, environment) in bytes


def is_script(argv: list[str]) -> bool:
    """`python SCRIPT.py ARGS...` (any python, no interpreter options): what a fork can run."""
    if len(argv) < 2 or not argv[1].endswith(".py"):
        return False
    name = os.path.basename(argv[0])
    return name.startswith("python") or os.path.realpath(argv[0]) == os.path.realpath(sys.executable)


def serve(fd: int, preload: list[str]) -> None:
    """The server's loop: import `preload`, say ready, then fork one child per request."""
    sock = socket.socket(fileno=fd)
    try:
        for name in preload:
            importlib.import_module(name)
    except BaseException as exc:  # reported to the supervisor, which says it in one line
        sock.send(json.dumps({"error": f"cannot import {name}: {type(exc).__name__}: {exc}"}).encode())
        return
    sock.send(json.dumps({"ready": True}).encode())
    while True:
        try:
            message, fds, _flags, _addr = socket.recv_fds(sock, MESSAGE, 1)
        except OSError:
            return
        if not message:
            return  # the supervisor is gone
        _reap()
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(request, fds[0])
        os.close(fds[0])
        sock.send(json.dumps({"pid": pid}).encode())
        sock.send(json.dumps({"exit": _wait_for(pid)}).encode())


def _wait_for(pid: int) -> int:
    """The fork's exit code (negative: killed by that signal), reaping orphans on the way."""
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return -signal.SIGKILL
        if done == pid:
            return os.waitstatus_to_exitcode(status)


def _reap() -> None:
    """Orphans of earlier forks, killed by the supervisor since."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _child(request: dict, log: int) -> None:
    """In the fork: the harness's script as `python SCRIPT ARGS` would run it; never returns."""
    code = 1
    try:
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        script = request["argv"][1]
        sys.argv = request["argv"][1:]
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        try:
            _run_script(script)
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except BaseException:  # the harness's own failure, as python would print it
            traceback.print_exc()
            code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _run_script(path: str) -> None:
    """`path` as the `__main__` module, as `python path` runs it. Not runpy.run_path: for a plain
    file it looks for an importer of the path first (pkgutil, zipimport), ~2 ms of a fresh fork's
    time, for a `.py` file that is never a zip."""
    with open(path, "rb") as f:
        source = f.read()
    main = types.ModuleType("__main__")
    main.__file__ = os.path.abspath(path)  # as python sets it since 3.9 (runpy kept it relative)
    sys.modules["__main__"] = main
    exec(compile(source, path, "exec"), main.__dict__)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2:])
