"""Parallel studies (`metaexp study --parallel W`): the runs side by side in worker processes give the
serial study's records and figures, and a study killed or interrupted in the middle resumes to them."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Project

from metaexp.study import format_table, run_study

pytestmark = pytest.mark.timeout(400)

SINGLE = ("hill_climb", "explore_exploit")  # no Ray: these run through the CLI in a process of their own
ARGS = ("deceptive.yaml", "--strategies", *SINGLE, "--seeds", "2", "--budget", "8", "--out", "out")


def landscapes(root: Path) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    demo = Project(root / "demo")
    Project(root).cli("init", "--example", "landscapes", str(demo.root))
    return demo


def figures(demo: Project) -> tuple[dict[str, Any], str]:
    out = demo.root / "out"
    return json.loads((out / "study.json").read_text()), (out / "study.txt").read_text()


def records(demo: Project, report: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Every run's records as two runs of one spec must agree on them (no times, no commit hashes)."""
    return {
        run["tag"]: [
            (r.n, str(r.status), r.value, r.params, r.island, r.generation) for r in demo.records(run["tag"])
        ]
        for run in report["runs"]
    }


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The serial study the parallel ones must agree with: its study.json, study.txt and records."""
    demo = landscapes(tmp_path_factory.mktemp("serial"))
    demo.cli("study", *ARGS)
    report, table = figures(demo)
    return report, table, records(demo, report)


def test_a_parallel_study_records_and_reports_what_the_serial_one_does(
    tmp_path: Path, ray_session: None
) -> None:
    """In this process, with a population (pbt) on the session's Ray, which the workers join."""
    results = {}
    for name, parallel in (("one", 1), ("three", 3)):
        demo = landscapes(tmp_path / name)
        stream = io.StringIO()
        result = run_study(
            demo.root / "deceptive.yaml",
            ["hill_climb", "pbt"],
            3,
            6,
            demo.root / "out",
            stream,
            parallel=parallel,
        )
        text = stream.getvalue()
        assert not result.unfinished and text.count("running (") == 6, text
        report, table = figures(demo)
        assert table == format_table(result.summary) + "\n"
        results[name] = (report, table, records(demo, report))
        for run in report["runs"]:
            demo.assert_consistent(run["tag"])
    assert results["one"] == results["three"]
    assert {run["strategy"] for run in results["three"][0]["runs"]} == {"hill_climb", "pbt"}


def test_through_the_cli_the_study_starts_one_ray_that_its_workers_join(
    tmp_path: Path, ray_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`metaexp study --parallel` starts a local Ray as its workers start (they join it, token
    authentication and all); the figures equal a serial study's on this session's Ray."""
    for name in [n for n in os.environ if n.startswith("RAY_")]:  # as from a fresh shell: not this
        monkeypatch.delenv(name)  # session's Ray's settings (its token mode hid a failed join)
    args = (
        "deceptive.yaml",
        "--strategies",
        "hill_climb",
        "pbt",
        "--seeds",
        "2",
        "--budget",
        "4",
        "--out",
        "out",
    )
    demo = landscapes(tmp_path / "cli")
    proc = demo.cli("study", *args, "--parallel", "3")
    assert proc.stderr.count("running (") == 4 and "refused" not in proc.stderr, proc.stderr
    serial = landscapes(tmp_path / "serial")
    run_study(serial.root / "deceptive.yaml", ["hill_climb", "pbt"], 2, 4, serial.root / "out", io.StringIO())
    assert figures(demo) == figures(serial)
    report = figures(demo)[0]
    assert records(demo, report) == records(serial, report)


def test_worker_deaths_fail_only_their_runs_and_the_study_resumes_them(
    tmp_path: Path, serial: tuple[dict[str, Any], str, dict[str, Any]]
) -> None:
    """Each run's worker dies recording its 4th experiment (its jsonl and TSV written, not its Optuna
    trial nor its refs), taking the run beside it along (the pool breaks): each is a failed run, the
    study goes on in a fresh pool, and the next study repairs and finishes them."""
    demo = landscapes(tmp_path)
    crashed = demo.cli(
        "study", *ARGS, "--parallel", "2", env={"METAEXP_CRASHPOINT": "after-tsv:4"}, check=False
    )
    assert crashed.returncode == 1, crashed.stderr
    assert crashed.stderr.count("failed: its worker process died") == 4, crashed.stderr
    counts = [len(demo.records(tag)) for tag in serial[2]]
    assert max(counts) == 4 and all(n <= 4 for n in counts), counts  # resumed below, nothing twice
    again = demo.cli("study", *ARGS, "--parallel", "2")
    assert again.stderr.count("running (") == 4 and "failed" not in again.stderr
    report, table = figures(demo)
    assert (report, table, records(demo, report)) == serial
    for tag in serial[2]:
        demo.assert_consistent(tag)


def test_a_study_killed_with_runs_in_flight_resumes_to_the_serial_figures(
    tmp_path: Path, serial: tuple[dict[str, Any], str, dict[str, Any]]
) -> None:
    """The driver is SIGKILLed once its first run has finished, with another in flight: its workers
    die with it (no run is left holding its lock), and the next study finishes the others."""
    demo = landscapes(tmp_path)
    killed = demo.cli(
        "study", *ARGS, "--parallel", "2", env={"METAEXP_CRASHPOINT": "study-finished:1"}, check=False
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    holders = [_holder(demo, tag) for tag in serial[2]]
    _wait_until(lambda: not any(pid and _alive(pid) for pid in holders), "the killed study's workers exited")
    again = demo.cli("study", *ARGS, "--parallel", "2")
    assert "done earlier" in again.stderr and again.stderr.count("running (") >= 1, again.stderr
    report, table = figures(demo)
    assert (report, table, records(demo, report)) == serial


def test_ctrl_c_lets_the_runs_in_flight_finish_their_experiment_then_the_study_resumes(
    tmp_path: Path, serial: tuple[dict[str, Any], str, dict[str, Any]]
) -> None:
    demo = landscapes(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "metaexp", "study", *ARGS, "--parallel", "2"],
        cwd=demo.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    first = list(serial[2])[:2]  # the two runs the study starts first
    _wait_until(lambda: all(len(demo.records(tag)) >= 2 for tag in first), "both runs recorded 2 experiments")
    proc.send_signal(signal.SIGINT)  # to the driver only: it passes it on to its workers
    _, stderr = proc.communicate(timeout=200)
    assert proc.returncode == 130, stderr
    assert "study interrupted: run it again to resume" in stderr
    for tag in first:
        demo.assert_consistent(tag)  # each stopped after what it had in flight, its ledger whole
    again = demo.cli("study", *ARGS, "--parallel", "2")
    report, table = figures(demo)
    assert (report, table, records(demo, report)) == serial
    assert again.returncode == 0


def test_parallel_must_be_a_positive_count_or_auto(tmp_path: Path) -> None:
    demo = landscapes(tmp_path)
    proc = demo.cli("study", *ARGS, "--parallel", "0", check=False)
    assert proc.returncode == 2 and "--parallel" in proc.stderr and "auto" in proc.stderr
    assert not (demo.root / ".metaexp").exists()
    for flag, value in (("--budget", "0"), ("--budget", "-3"), ("--seeds", "0")):  # not the spec's budget
        proc = demo.cli("study", *ARGS, flag, value, check=False)
        last = proc.stderr.strip().splitlines()[-1]  # after argparse's usage
        assert proc.returncode == 2 and f"argument {flag}: a whole number, 1 or more, not '{value}'" in last
    assert not (demo.root / ".metaexp").exists()


def _holder(demo: Project, tag: str) -> int | None:
    lock = demo.root / ".metaexp" / tag / "lock"
    text = lock.read_text().strip() if lock.exists() else ""
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def _wait_until(check: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g}s"
        time.sleep(0.05)


def test_runs_start_one_strategy_after_another_populations_first(tmp_path: Path) -> None:
    from metaexp.study.planning import plan_runs
    from metaexp.study.pool import interleaved

    demo = landscapes(tmp_path)
    _, runs = plan_runs(demo.root / "deceptive.yaml", ["hill_climb", "islands", "pbt"], 3)
    todo = list(enumerate(runs, 1))[:-1]  # pbt's last seed done earlier: the turns still alternate
    order = [(run.strategy, run.seed) for _, run in interleaved(todo)]
    assert order == [
        ("islands", 0), ("pbt", 0), ("hill_climb", 0),
        ("islands", 1), ("pbt", 1), ("hill_climb", 1),
        ("islands", 2), ("hill_climb", 2),
    ]  # fmt: skip
    assert sorted(interleaved(todo), key=lambda item: item[0]) == todo
