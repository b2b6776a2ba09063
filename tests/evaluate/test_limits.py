"""harness.memory_mb and harness.cpus by a cgroup of the harness's own, run through `metaexp run`:
memory the supervisor's RSS polling cannot see (files in the sandbox's tmpfs /tmp) and CPU time.
With METAEXP_CGROUPS=off (a machine without cgroups) the same harnesses get through: those runs
show what the cgroup adds."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
from conftest import Project

from metaexp.evaluate.cgroups import available
from metaexp.evaluate.isolation import available as isolation
from metaexp.record.records import Status


@pytest.fixture(autouse=True)
def cgroups() -> None:
    if not available():
        pytest.skip("no cgroup can be made here (not root, or no memory controller): limits are polled")


def run(project: Project, script: str, cgroups: bool, budget: int = 1, **harness: Any) -> str:
    """`metaexp run` of a harness `script` with `harness` settings; its output."""
    project.write("hog.py", script)
    project.spec(
        harness={"command": "python hog.py", "immutable": ["hog.py"], **harness},
        budget={"max_experiments": budget},
    )
    env = {} if cgroups else {"METAEXP_CGROUPS": "off"}
    proc: subprocess.CompletedProcess[str] = project.cli("run", "metaexp.yaml", env=env, check=False)
    return proc.stdout + proc.stderr


# Memory in files of the sandbox's private tmpfs /tmp: no process's RSS, so polling never sees it.
TMPFS_HOG = """\
import os
with open("/tmp/fill", "wb") as fh:
    for _ in range(400):
        fh.write(os.urandom(2**20))
        fh.flush()
print("filled 400 MB", flush=True)
print("loss: 1")
"""


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup", "polling"])
def test_memory_in_tmpfs_files_counts_against_memory_mb(project: Project, cgroups: bool) -> None:
    if isolation() != "bwrap":
        pytest.skip("the private tmpfs /tmp comes with bubblewrap")
    out = run(project, TMPFS_HOG, cgroups, memory_mb=150, sandbox="required")
    rec = project.records()[0]
    if cgroups:
        assert "limits: memory 150 MB by cgroup" in out, out
        assert rec.status is Status.CRASH and "memory above memory_mb=150" in rec.reason, rec
        assert "filled 400 MB" not in rec.log_tail
    else:  # what polling misses
        assert "memory by RSS polling" in out, out
        logs = "".join(p.read_text() for p in (project.root / ".metaexp/landscape/logs").glob("*.log"))
        assert rec.status is Status.KEEP and "filled 400 MB" in logs, rec


def test_a_spike_between_polls_is_caught(project: Project) -> None:
    spike = "x = b'x' * (400 * 2**20)\ndel x\nprint('loss: 1')\n"  # ~0.1 s: shorter than a poll
    run(project, spike, True, memory_mb=150)
    rec = project.records()[0]
    assert rec.status is Status.CRASH and "memory above memory_mb=150" in rec.reason, rec


# CPU time over wall time while it burns one core for a second.
BURN = """\
import time
wall, cpu = time.monotonic(), time.process_time()
while time.monotonic() - wall < 1.0:
    pass
print("loss:", (time.process_time() - cpu) / (time.monotonic() - wall))
"""


def test_cpus_caps_the_harness_cpu_time(project: Project) -> None:
    out = run(project, BURN, True, cpus=0.2)
    assert "limits: 0.2 CPUs by cgroup" in out, out
    share = project.records()[0].metrics["loss"]
    assert share < 0.35, f"a harness limited to 0.2 CPUs used {share:.2f} of a core"


def test_without_cgroups_cpus_is_said_to_be_unenforced(project: Project) -> None:
    out = run(project, BURN, False, cpus=0.2)
    assert "harness.cpus not enforced" in out, out
    validate = project.cli("validate", "metaexp.yaml", env={"METAEXP_CGROUPS": "off"})
    assert "harness.cpus not enforced" in validate.stdout, validate.stdout
    assert os.environ.get("METAEXP_CGROUPS") != "off"  # the test's own process still has cgroups
