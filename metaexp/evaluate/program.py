"""One program run in a candidate's sandbox under its supervisor, and what its run means.

The harness, each cascade stage and the held-out validation are such programs: each has a command
and a timeout of its own and the spec's grace and memory limits. A failing program is data, never
an exception (a second Ctrl-C aside): it comes back as a status and a reason, with its log.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from metaexp.evaluate.forkserver import is_script
from metaexp.evaluate.isolation import HOME, isolation_for, wrap, wrap_server
from metaexp.evaluate.sandbox import BaseTree
from metaexp.evaluate.supervisor import Supervised, supervise
from metaexp.record.records import Status
from metaexp.spec import Spec
from metaexp.spec.harness import _Command

TAIL_LINES = 40
TAIL_CHARS = 4000
MAX_LOG_READ = 8 * 2**20  # metrics are read from the last 8 MiB of a log


@dataclass(frozen=True)
class Outcome:
    status: Status | None  # None: ran and produced every metric
    metrics: dict[str, float] = field(default_factory=dict)
    harness_s: float = 0.0
    reason: str = ""
    log_tail: str = ""
    cascade: list[dict[str, object]] = field(default_factory=list)  # the cheap stages it ran first


class Interrupted(Exception):
    """The user aborted the harness with a second Ctrl-C."""


@dataclass(frozen=True)
class Ran:
    seconds: float
    output: str  # the log's last MAX_LOG_READ bytes
    failure: tuple[Status, str] | None  # why the run is not usable, whatever it printed

    @property
    def tail(self) -> str:
        return "\n".join(self.output.splitlines()[-TAIL_LINES:])[-TAIL_CHARS:]


def binds_base(spec: Spec) -> bool:
    """Whether the isolation binds the base's files into a sandbox tree (bubblewrap), or the tree
    links to them (sandbox.BaseTree.sandbox): no bubblewrap, or a warm server's view, which binds
    the base whole."""
    return isolation_for(spec.harness.sandbox, spec.harness.network).full and not spec.harness.preload


def run_program(
    spec: Spec, command: _Command, base: BaseTree, cwd: Path, env: Mapping[str, str], log: Path
) -> Ran:
    """Run `command` in the sandbox tree `cwd`, isolated as `harness.sandbox` says; shared base files
    it wrote through (possible only without isolation) are restored and make the run a crash."""
    h = spec.harness
    iso = isolation_for(h.sandbox, h.network)
    env = {**env, "HOME": HOME} if iso.full else dict(env)
    if not binds_base(spec):  # the tree links into the base: `python evaluate.py` would look for its
        # imports beside the link's target, in the base, where no target file is; the tree first
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(cwd), env.get("PYTHONPATH", "")) if p)
    gpus = bool(os.environ.get("CUDA_VISIBLE_DEVICES")) or bool(spec.ray.eval_resources.get("num_gpus"))
    warm = None
    if h.preload and is_script(command.argv):  # a fork of the warm server runs the script
        server = [sys.executable, "-m", "metaexp.evaluate.forkserver", "{fd}", *h.preload]
        server = wrap_server(iso, server, cwd.parent, base.root, h.network, gpus)
        warm = {"key": json.dumps([server, sorted(env)]), "argv": server, "env": env}
        argv = command.argv
    elif h.preload:  # trees link into the base: bind it whole
        argv = wrap(iso, command.argv, cwd, {}, h.network, gpus, base_root=base.root)
    else:
        argv = wrap(iso, command.argv, cwd, base.frozen_files(), h.network, gpus)
    run = supervise(
        argv,
        cwd=str(cwd),
        env=env,
        log_path=str(log),
        timeout_s=command.timeout_s,
        grace_s=spec.harness.grace_s,
        memory_mb=spec.harness.memory_mb,
        cpus=spec.harness.cpus,
        warm=warm,
    )
    touched = base.restore_shared()
    if run.aborted:
        raise Interrupted
    return Ran(run.seconds, read_end(log, MAX_LOG_READ), _failure(run, spec, touched, command.timeout_s))


def _failure(run: Supervised, spec: Spec, touched: list[str], timeout_s: float) -> tuple[Status, str] | None:
    if run.error:
        return Status.CRASH, run.error
    if run.timed_out:
        return Status.TIMEOUT, f"killed after timeout_s={timeout_s:g}"
    if run.memory_exceeded:
        return Status.CRASH, f"memory above memory_mb={spec.harness.memory_mb:g} (killed)"
    if touched:
        return Status.CRASH, f"the harness wrote to shared file(s) {', '.join(touched)} (restored)"
    code = run.returncode
    if code is not None and code < 0:
        return Status.CRASH, f"exit signal {-code}"
    if code != 0:
        return Status.CRASH, f"exit code {code}"
    return None


def read_end(path: Path, limit: int) -> str:
    """The last `limit` bytes of a log, as text."""
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - limit))
        return fh.read().decode(errors="replace")
