"""Population runs survive Ray faults, injected for real: a lineage actor SIGKILLed by its PID, an
evaluation's worker killed mid-run, a lineage that keeps dying, a driver killed with SIGKILL."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Project
from helpers import RAY, check_population, worker_killer

from metaexp.record.records import ExperimentRecord, Status
from metaexp.run import RunResult, run
from metaexp.spec import load_spec

pytestmark = pytest.mark.timeout(240)

POPULATION = {"islands": 2, "population": 2, "migration": {"every": 3, "count": 1}}
SLOW = "import time\ntime.sleep(0.3)\nexec(open('evaluate.py').read())\n"  # long enough to land a kill in


def _start(project: Project, out: io.StringIO, **overrides: Any) -> tuple[threading.Thread, list[RunResult]]:
    """A population run in a thread of this process (on the session's Ray)."""
    settings = {"strategy": POPULATION, "ray": RAY, **overrides}
    spec = load_spec(project.spec(**settings))
    done: list[RunResult] = []
    thread = threading.Thread(target=lambda: done.append(run(spec, out=out)))
    thread.start()
    return thread, done


def _wait_for(check: Any, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g}s"
        time.sleep(0.05)


def _actor_pid(name: str) -> int | None:
    """The PID of the alive actor with this name, from Ray's actor table."""
    import ray._private.state as ray_state

    for actor in ray_state.state.actor_table(None).values():
        if actor.get("Name") == name and actor.get("State") == "ALIVE" and actor.get("Pid"):
            return int(actor["Pid"])
    return None


def _unique_and_consecutive(records: list[ExperimentRecord]) -> None:
    assert [r.n for r in records] == list(range(1, len(records) + 1))
    tried = [(r.island, r.generation) for r in records if r.n > 1 and r.status is not Status.MIGRATE]
    assert len(tried) == len(set(tried)), "a proposal was recorded twice"


def test_a_lineage_actor_killed_by_its_pid_is_rebuilt_and_goes_on(
    project: Project, ray_session: None
) -> None:
    project.write("slow.py", SLOW)
    out = io.StringIO()
    harness = {"command": "python slow.py", "immutable": ["evaluate.py", "slow.py"]}
    thread, done = _start(project, out, harness=harness, budget={"max_experiments": 14})
    _wait_for(lambda: len(project.records()) >= 4 and _actor_pid("metaexp:landscape:island-1"), "4 records")
    pid = _actor_pid("metaexp:landscape:island-1")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # what an OOM kill or a lost node does to an actor
    thread.join(timeout=180)
    assert done and done[0].stop_reason == "max_experiments=14 reached", out.getvalue()[-2000:]
    assert "island 1 died (" in out.getvalue() and "; rebuilt from " in out.getvalue()
    records = check_population(project)
    _unique_and_consecutive(records)
    assert sum(1 for r in records if r.status.harness_ran) == 14
    killed_at = next(n for n, r in enumerate(records, 1) if n >= 4)
    assert any(r.island == 1 and r.n > killed_at for r in records)  # its lineage went on from the records


def test_an_evaluation_whose_worker_dies_is_run_again(project: Project, ray_session: None) -> None:
    out = io.StringIO()
    thread, done = _start(
        project, out, harness=worker_killer(project, target="1", once=True), budget={"max_experiments": 8}
    )
    thread.join(timeout=180)
    assert done and done[0].stop_reason == "max_experiments=8 reached", out.getvalue()[-2000:]
    records = check_population(project)
    _unique_and_consecutive(records)
    evaluated = [r for r in records if r.status.harness_ran]
    crashed = [(r.n, r.generation, r.island, r.reason) for r in evaluated if r.status is Status.CRASH]
    assert len(evaluated) == 8 and not crashed, crashed  # the retry ran it
    assert not (project.root.parent / "kill-the-worker").exists()  # the kill happened


def test_an_evaluation_whose_worker_dies_every_time_is_a_crash(project: Project, ray_session: None) -> None:
    out = io.StringIO()
    budget = {"max_experiments": 8, "abort_on_consecutive_crashes": None}
    thread, done = _start(project, out, harness=worker_killer(project, target="1", once=False), budget=budget)
    thread.join(timeout=180)
    assert done and done[0].stop_reason == "max_experiments=8 reached", out.getvalue()[-2000:]
    records = check_population(project)
    crashed = [r for r in records if r.status is Status.CRASH]
    assert crashed and all(r.generation == 1 for r in crashed), [(r.n, r.reason) for r in crashed]
    assert all("worker died on each of 3 tries" in r.reason for r in crashed)


def test_evaluations_that_ray_keeps_losing_abort_at_the_crash_streak(
    project: Project, ray_session: None
) -> None:
    """Every evaluation after the baseline kills its worker, on each try: nothing runs that could tell
    the harness from the changes (no probe), so a streak of such crashes aborts as it always did."""
    harness = worker_killer(project, target="1", once=False, all_but=True)
    settings: dict[str, Any] = {
        "harness": harness,
        "budget": {"max_experiments": 6, "abort_on_consecutive_crashes": 2},
        "ray": {**RAY, "max_concurrent_evals": 1, "schedule": "ordered"},
    }
    result = run(load_spec(project.spec(**settings)), out=io.StringIO(), scheduler="ordered")
    assert result.aborted and "#3's evaluation could not run at all" in result.stop_reason, result.stop_reason
    records = project.assert_consistent()
    assert [r.status for r in records] == [Status.KEEP, Status.CRASH, Status.CRASH]
    assert all(r.extra.get("lost") and "worker died on each of 3 tries" in r.reason for r in records[1:])


def test_a_lineage_that_keeps_dying_stops_the_run_with_one_line(project: Project, tmp_path: Path) -> None:
    spec = project.spec(strategy=POPULATION, ray=RAY, budget={"max_experiments": 10})
    env = {**os.environ, "METAEXP_CRASHPOINT": "ask:1"}  # lineage 1 kills itself before each proposal
    proc = subprocess.run(
        [sys.executable, "-m", "metaexp", "run", str(spec)],
        cwd=project.root,
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=200,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "abort: island 1 died 3 times in a row" in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    records = project.assert_consistent()
    assert records and all(r.island == 0 or r.status is Status.MIGRATE for r in records[1:])
    again = project.cli("run", "metaexp.yaml")  # resumable: without the fault it finishes
    assert "max_experiments=10 reached" in again.stderr
    _unique_and_consecutive(project.assert_consistent())


def test_a_population_driver_killed_with_sigkill_resumes_with_nothing_lost(project: Project) -> None:
    project.write("slow.py", SLOW)
    harness = {"command": "python slow.py", "immutable": ["evaluate.py", "slow.py"]}
    spec = project.spec(strategy=POPULATION, ray=RAY, harness=harness, budget={"max_experiments": 10})
    proc = subprocess.Popen(
        [sys.executable, "-m", "metaexp", "run", str(spec)],
        cwd=project.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_for(lambda: len(project.records()) >= 5, "5 records", timeout=150)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started in its session
    proc.wait()
    before = project.records()
    project.cli("run", "metaexp.yaml")
    records = check_population(project)
    assert records[: len(before)] == before  # nothing lost or rewritten
    _unique_and_consecutive(records)
    assert sum(1 for r in records if r.status.harness_ran) == 10
