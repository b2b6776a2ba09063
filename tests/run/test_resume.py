"""A run killed with SIGKILL at any point resumes with nothing lost or counted twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import Project


@pytest.mark.parametrize("point", ["after-jsonl", "after-tsv", "after-optuna"])
def test_sigkill_inside_the_ledger_write_is_repaired(project: Project, point: str) -> None:
    project.spec(budget={"max_experiments": 6})
    killed = project.cli("run", "metaexp.yaml", env={"METAEXP_CRASHPOINT": f"{point}:3"}, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert len(project.records()) == 3  # the jsonl line was written before the kill
    project.cli("run", "metaexp.yaml")
    records = project.assert_consistent()
    assert len(records) == 6


def test_sigkill_while_the_harness_runs(project: Project) -> None:
    marker = project.root.parent / "hang"
    marker.touch()
    project.write(
        "evaluate.py",
        (project.root / "evaluate.py")
        .read_text()
        .replace(
            "def main():",
            "def main():\n    import time\n    if os.environ['METAEXP_EXPERIMENT'] == '3' and "
            "os.path.exists(os.environ['HANG']):\n        time.sleep(60)",
        ),
    )
    harness = {"env": {"HANG": str(marker)}, "sandbox": "off"}  # the harness sees the host's marker
    spec = project.spec(budget={"max_experiments": 5}, harness=harness)
    proc = subprocess.Popen(
        [sys.executable, "-m", "metaexp", "run", str(spec)],
        cwd=project.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = project.root / ".metaexp" / "landscape" / "logs" / "3.log"
    deadline = time.monotonic() + 30
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(project.records()) == 2
    time.sleep(0.5)  # the orphaned supervisor saw its parent die and killed the harness
    assert not _processes_with_cwd_under(project.root)
    marker.unlink()
    project.cli("run", "metaexp.yaml")
    records = project.assert_consistent()
    assert len(records) == 5 and records[2].status.harness_ran and records[2].status != "timeout"


def test_torn_last_line_is_dropped(project: Project) -> None:
    project.run(budget={"max_experiments": 3})
    jsonl = project.root / ".metaexp" / "landscape" / "experiments.jsonl"
    with jsonl.open("ab") as fh:
        fh.write(b'{"n": 4, "commit": "abc')  # a write cut short by a kill
    project.run(budget={"max_experiments": 4})
    records = project.assert_consistent()
    assert [r.n for r in records] == [1, 2, 3, 4]


def _processes_with_cwd_under(root: object) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/cwd").startswith(str(root)):
                    found.append(int(name))
            except OSError:
                pass
    return found


def _start_slow_run(project: Project) -> tuple[subprocess.Popen[str], object]:
    project.write("slow.py", "import time\ntime.sleep(1.5)\nprint('loss: 1')\n")
    spec = project.spec(
        harness={"command": "python slow.py", "immutable": ["slow.py"]}, budget={"max_experiments": 10}
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "metaexp", "run", str(spec)],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    logs = project.root / ".metaexp" / "landscape" / "logs"
    deadline = time.monotonic() + 30
    while not (logs / "2.log").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc, logs


def test_ctrl_c_finishes_the_experiment_in_flight(project: Project) -> None:
    proc, _ = _start_slow_run(project)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "finishing the experiment(s) in flight" in err
    assert "stopped: Ctrl-C: the experiment(s) in flight were finished and recorded" in err
    records = project.assert_consistent()
    assert len(records) == 2 and records[1].status.harness_ran  # #2 was finished and recorded


def test_second_ctrl_c_aborts_the_harness_and_records_nothing(project: Project) -> None:
    proc, _ = _start_slow_run(project)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "not recorded and will run again on resume" in err
    assert len(project.assert_consistent()) == 1
    assert not _processes_with_cwd_under(project.root)
