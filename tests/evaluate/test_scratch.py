"""A job's scratch folder (a Ray worker's logs before they travel back): removed after the job, and
left behind by a worker killed mid-job only until the next process on the node runs a job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from metaexp.evaluate.runner import scratch, sweep_scratch

HOLD = """
import sys, time
from metaexp.evaluate.runner import scratch
with scratch(sys.argv[1]) as folder:
    print(folder, flush=True)
    time.sleep(600)
"""


def _holder(tmp: Path, prefix: str) -> tuple[subprocess.Popen[str], Path]:
    """A process inside a job's scratch folder under `tmp` (its TMPDIR), and that folder."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, prefix],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_a_killed_jobs_folder_is_swept_and_a_live_ones_is_not(tmp_path: Path) -> None:
    killed, dead_folder = _holder(tmp_path, "metaexp-eval-")
    live, live_folder = _holder(tmp_path, "metaexp-validation-")
    try:
        assert dead_folder.parent == tmp_path and dead_folder.is_dir() and live_folder.is_dir()
        os.kill(killed.pid, signal.SIGKILL)  # as Ray kills a worker: no finally runs
        killed.wait()
        assert dead_folder.is_dir()  # left behind
        other = tmp_path / "metaexp-eval-not-ours"  # no owner lock: not a job folder of this version
        other.mkdir()
        assert sweep_scratch(tmp_path) == [dead_folder]
        assert not dead_folder.exists() and live_folder.is_dir() and other.is_dir()
    finally:
        live.kill()
        live.wait()
    assert sweep_scratch(tmp_path) == [live_folder]


def test_a_job_removes_its_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with scratch("metaexp-eval-") as folder:
        (folder / "run.log").write_text("x")
        assert folder.parent == tmp_path and (folder / ".owner").exists()
    assert not folder.exists()
