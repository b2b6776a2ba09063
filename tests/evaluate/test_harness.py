"""The harness runner: limits, secrets, shared files, failures recorded as data."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import Project
from helpers import PICKY, PICKY_HARNESS

from metaexp.evaluate.isolation import TOOLS_VARIABLE, available
from metaexp.record.records import Status

EVIL = """\
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
out = os.environ["PIDS"]
for i in range(3):
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if i == 1:
            os.setsid()                  # a new session: out of the harness's process group
        if i == 2:
            os.setsid()
            if os.fork() > 0:            # double fork: the grandchild is orphaned
                os._exit(0)
        with open(os.path.join(out, f"{os.getpid()}.pid"), "w") as fh:
            fh.write("x")
        while True:
            time.sleep(1)
print("forked", flush=True)
while True:
    time.sleep(1)
"""


def test_hanging_forking_term_ignoring_harness_is_killed_with_no_process_left(
    project: Project, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    project.write("evil.py", EVIL)
    t0 = time.monotonic()
    project.run(
        harness={
            "command": "python evil.py",
            "timeout_s": 2,
            "grace_s": 0.5,
            "env": {"PIDS": str(pids)},
            "sandbox": "off",  # the supervisor alone: the harness writes host PIDs to a host folder
            "immutable": ["evil.py"],
        },
        budget={"max_experiments": 1},
    )
    assert time.monotonic() - t0 < 15
    rec = project.records()[0]
    assert rec.status is Status.TIMEOUT and "timeout_s=2" in rec.reason
    assert "forked" in rec.log_tail
    started = [int(p.stem) for p in pids.iterdir()]
    assert len(started) == 3
    alive = [pid for pid in started if os.path.exists(f"/proc/{pid}") and not _zombie(pid)]
    assert alive == []


def test_harness_sees_no_secrets_unless_passed(project: Project, monkeypatch: object) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")  # type: ignore[attr-defined]
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-secret")  # type: ignore[attr-defined]
    monkeypatch.setenv("DB_PASSWORD", "hunter2")  # type: ignore[attr-defined]
    monkeypatch.setenv("KEEP_ME_API_KEY", "allowed")  # type: ignore[attr-defined]
    monkeypatch.setenv("MY_CUSTOM", "listed")  # type: ignore[attr-defined]
    project.write("envdump.py", "import os\nfor k in sorted(os.environ): print('ENV', k)\nprint('loss: 1')\n")
    project.run(
        harness={
            "command": "python envdump.py",
            "immutable": ["envdump.py"],
            "pass_env": ["KEEP_ME_API_KEY"],
            "strip_env": ["MY_CUSTOM"],
        },
        budget={"max_experiments": 1},
    )
    log = (project.root / ".metaexp/landscape/logs/1.log").read_text()
    names = {line.split()[1] for line in log.splitlines() if line.startswith("ENV ")}
    assert not any(n.endswith("_API_KEY") and n != "KEEP_ME_API_KEY" for n in names)
    assert {"GITHUB_TOKEN", "DB_PASSWORD", "MY_CUSTOM", "OPENAI_API_KEY"}.isdisjoint(names)
    assert {"KEEP_ME_API_KEY", "METAEXP_TIME_BUDGET", "METAEXP_SEED", "METAEXP_EXPERIMENT"} <= names


@pytest.mark.parametrize("sandbox", ["auto", "off"])
def test_harness_writing_to_a_shared_file_does_not_change_it(project: Project, sandbox: str) -> None:
    project.write("data.txt", "precious\n")
    project.write("vandal.py", "open('data.txt', 'w').write('vandalised')\nprint('loss: 1')\n")
    harness = {"command": "python vandal.py", "immutable": ["vandal.py"], "sandbox": sandbox}
    project.run(harness=harness, budget={"max_experiments": 2})
    base = project.root / ".metaexp/landscape/base/data.txt"
    assert base.read_text() == "precious\n"
    rec = project.records()[0]
    if sandbox == "auto" and available() == "bwrap":  # the base is bound read-only: nobody writes
        assert rec.status is Status.CRASH and "Read-only file system" in rec.log_tail
    elif os.geteuid() == 0:  # root writes through the read-only link: caught and restored
        assert rec.status is Status.CRASH and "data.txt" in rec.reason
    else:  # everyone else is stopped by the read-only base
        assert rec.status is Status.CRASH and "Permission" in rec.log_tail
    assert (project.root / "data.txt").read_text() == "precious\n"


@pytest.mark.parametrize("sandbox,tools", [("auto", None), ("auto", "unshare"), ("off", None)])
def test_a_harness_imports_the_target_and_its_own_modules_under_every_isolation(
    project: Project, sandbox: str, tools: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python evaluate.py` that imports the target (`import params`, as autoresearch's harness
    imports train.py) and a module of its own works whatever isolates it. Without bubblewrap the
    tree links to the base, and Python looks for imports beside the link's target, in the base,
    where no target file is: without PYTHONPATH naming the tree every run crashed there."""
    if tools is not None:
        monkeypatch.setenv(TOOLS_VARIABLE, tools)
        if available() != tools:
            pytest.skip(f"{tools} does not work here")
    project.write("helper.py", "def loss(x, y):\n    return (x - 1) ** 2 + (y + 2) ** 2\n")
    project.write(
        "imports.py", "import helper\nimport params\nprint('loss:', helper.loss(params.X, params.Y))\n"
    )
    harness = {"command": "python imports.py", "immutable": ["imports.py", "helper.py"], "sandbox": sandbox}
    project.run(harness=harness, budget={"max_experiments": 3})
    records = project.assert_consistent()
    assert records[0].status is Status.KEEP, (records[0].reason, records[0].log_tail)
    assert records[0].value == (3.0 - 1) ** 2 + (-2.0 + 2) ** 2  # params.py's X = 3.0, Y = -2.0
    assert not [r for r in records if r.status is Status.CRASH], [r.log_tail for r in records]


def test_failures_are_rows_not_errors(project: Project) -> None:
    script = (
        "import os, sys\nn = int(os.environ['METAEXP_EXPERIMENT'])\n"
        "if n == 2: sys.exit(3)\nif n == 3: print('loss: nan')\nif n == 4: print('no metric here')\n"
        "if n == 1 or n > 4: print('loss:', 10 - n)\n"
    )
    project.write("flaky.py", script)
    project.run(
        harness={"command": "python flaky.py", "immutable": ["flaky.py"]},
        budget={"max_experiments": 6, "abort_on_consecutive_crashes": 5},
    )
    records = project.assert_consistent()
    assert [r.status for r in records[:4]] == [Status.KEEP, Status.CRASH, Status.CRASH, Status.CRASH]
    assert "exit code 3" in records[1].reason
    assert "is nan" in records[2].reason
    assert "not found" in records[3].reason
    assert records[4].status is Status.KEEP  # crash streak reset


def test_consecutive_crashes_abort(project: Project) -> None:
    project.write(
        "crashy.py", "import os\nprint('loss: 1' if os.environ['METAEXP_EXPERIMENT'] == '1' else 'x')\n"
    )
    result = project.run(
        harness={"command": "python crashy.py", "immutable": ["crashy.py"]},
        budget={"max_experiments": 20, "abort_on_consecutive_crashes": 3},
    )
    assert result.aborted and "3 crashes/timeouts in a row" in result.stop_reason
    records = project.records()
    assert len(records) == 4  # the probe rode on the third crash: the abort came no later
    # the third crash's parent was run again (METAEXP_EXPERIMENT is still 4: it crashed too)
    assert ["probe" in r.extra for r in records] == [False, False, False, True]
    assert records[3].extra["probe"]["status"] == "crash"
    assert records[3].reason.endswith("; probe: the parent fails too")
    assert "#4's parent failed too when run again (logs/4.probe.log)" in result.stop_reason
    probe_log = project.root / ".metaexp" / "landscape" / "logs" / "4.probe.log"
    assert probe_log.read_text().strip().endswith("x")
    assert result.tally.evaluations == 3 + 1 + 1  # the probe is a harness run


def test_a_crash_streak_whose_parent_still_runs_goes_on(project: Project) -> None:
    """Every change crashes (a search in a region where the harness crashes), the start still runs:
    each streak's probe runs the start again, it passes, the streak resets and the run reaches its
    budget instead of aborting at the third crash in a row."""
    project.write("picky.py", PICKY)
    limit = 3
    result = project.run(
        harness=PICKY_HARNESS,
        budget={"max_experiments": 9, "abort_on_consecutive_crashes": limit},
    )
    assert not result.aborted and result.stop_reason == "max_experiments=9 reached"
    records = project.assert_consistent()
    ran = [r for r in records if r.status.harness_ran]
    assert ran[0].status is Status.KEEP and all(r.status is Status.CRASH for r in ran[1:])
    streak, probed = 0, []  # a job carries the probe when the streak is one short of the limit
    for _ in ran[1:]:
        probed.append(streak >= limit - 1)
        streak = 0 if probed[-1] else streak + 1
    assert ["probe" in r.extra for r in ran[1:]] == probed and sum(probed) == 2
    logs = project.root / ".metaexp" / "landscape" / "logs"
    for r in ran[1:]:
        if "probe" in r.extra:
            assert r.extra["probe"] == {"status": "ok", "metrics": {"loss": 1.0}, "reason": ""}
            assert r.reason.endswith("; probe: the parent runs") and "diverged" in r.log_tail
            assert "loss: 1.0" in (logs / f"{r.n}.probe.log").read_text()
    assert result.tally.evaluations == 9 + 2


def test_broken_baseline_stops_with_a_message(project: Project) -> None:
    project.write("broken.py", "raise SystemExit('cannot load data')\n")
    result = project.run(harness={"command": "python broken.py", "immutable": ["broken.py"]})
    assert result.aborted and "baseline" in result.stop_reason
    assert ".metaexp/landscape/logs/1.log" in result.stop_reason and "another `tag:`" in result.stop_reason
    assert "cannot load data" in (project.root / ".metaexp/landscape/logs/1.log").read_text()
    rec = project.records()[0]
    assert rec.status is Status.CRASH and "cannot load data" in rec.log_tail
    again = project.cli("run", "metaexp.yaml", check=False)  # as a user resumes it: the same one line
    assert again.returncode == 1 and "logs/1.log" in again.stderr and "Traceback" not in again.stderr
    assert "the best is" not in again.stderr  # there is none: no ref to point at
    status = project.cli("status", "metaexp.yaml").stdout  # later: why it stopped is still there
    assert "stopped 20" in status and ": abort: the baseline (the unchanged start)" in status
    report = project.cli("report", "metaexp.yaml").stdout  # the report too, and no lineage of no best
    assert ": abort: the baseline (the unchanged start)" in report and "lineage" not in report


def test_memory_limit_kills_the_harness(project: Project) -> None:
    project.write("hog.py", "import time\nx = bytearray(600 * 2**20)\ntime.sleep(10)\nprint('loss: 1')\n")
    project.run(
        harness={"command": "python hog.py", "immutable": ["hog.py"], "memory_mb": 200},
        budget={"max_experiments": 1},
    )
    rec = project.records()[0]
    assert rec.status is Status.CRASH and "memory_mb=200" in rec.reason and rec.harness_s < 5


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_the_operators_key_variable_is_stripped_whatever_its_name(
    project: Project, monkeypatch: object
) -> None:
    monkeypatch.setenv("MY_LLM_CREDENTIAL", "s3cret")  # type: ignore[attr-defined]
    project.write(
        "envdump.py", "import os\nprint('HAS', 'MY_LLM_CREDENTIAL' in os.environ)\nprint('loss: 1')\n"
    )
    project.run(
        harness={"command": "python envdump.py", "immutable": ["envdump.py"]},
        operator={
            "kind": "llm",
            "model": "m",
            "api_key_env": "MY_LLM_CREDENTIAL",
            "style": "bold",
            "space": None,
        },
        budget={"max_experiments": 1},
    )
    assert "HAS False" in (project.root / ".metaexp/landscape/logs/1.log").read_text()


def test_probes_stay_within_max_evaluations(project: Project) -> None:
    """A probe is a harness run: none is started that would pass budget.max_evaluations (the run then
    stops at its budget, not at the streak, whose probe never came)."""
    project.write("picky.py", PICKY)
    result = project.run(
        harness=PICKY_HARNESS,
        budget={"max_experiments": 50, "max_evaluations": 6, "abort_on_consecutive_crashes": 2},
    )
    assert result.stop_reason == "max_evaluations=6 reached" and result.tally.evaluations == 6
    records = project.records()
    # 1 baseline, 2 crash, 3 crash + its probe (passed), 4 crash, 5 crash: a probe would make it 7
    assert [r.n for r in records if "probe" in r.extra] == [3] and len(records) == 5


def test_an_abort_that_is_due_is_not_undone_by_a_later_crash_without_a_probe() -> None:
    """With several evaluations in flight, crashes submitted before the streak reached the limit carry
    no probe and can land after a failed probe: the abort stays due."""
    from metaexp.record.records import ExperimentRecord
    from metaexp.run.budget import Tally

    def rec(n: int, status: Status, **extra: object) -> ExperimentRecord:
        return ExperimentRecord(n, "c", "p", "t", status, "", extra=dict(extra))

    tally = Tally()
    tally.add(rec(1, Status.KEEP))
    for n in (2, 3):
        tally.add(rec(n, Status.CRASH))
    assert tally.crash_streak == 2 and tally.broken is None
    tally.add(rec(4, Status.CRASH, probe={"status": "crash", "metrics": {}, "reason": "exit code 1"}))
    tally.add(rec(5, Status.CRASH))  # in flight since before the streak reached 2
    assert tally.crash_streak == 4 and tally.broken is not None and tally.broken[0] == 4
    assert tally.evaluations == 1 + 4 + 1
    tally.add(rec(6, Status.CRASH, probe={"status": "ok", "metrics": {"loss": 1.0}, "reason": ""}))
    assert tally.crash_streak == 0 and tally.broken is None  # the parent runs now: the changes fail
    tally.add(rec(7, Status.CRASH, lost=True))  # Ray lost it: nothing tells the harness from the change
    assert tally.crash_streak == 1 and tally.broken is not None and tally.broken[0] == 7
    tally.add(rec(8, Status.KEEP))
    assert tally.crash_streak == 0 and tally.broken is None


FIXABLE = """\
import os, sys
if os.environ['METAEXP_EXPERIMENT'] != '1' and not os.environ.get('FIXED'):
    sys.exit('the data mount is gone')
exec(open('evaluate.py').read())
"""


def test_a_run_aborted_by_a_broken_harness_resumes_once_it_is_fixed(project: Project) -> None:
    """Resuming a run that a crash streak aborted probes again instead of aborting at once: still
    broken, it aborts after one more experiment; fixed, it goes on."""
    project.write("fixable.py", FIXABLE)
    harness = {"command": "python fixable.py", "immutable": ["evaluate.py", "fixable.py"]}
    budget = {"max_experiments": 7, "abort_on_consecutive_crashes": 3}
    first = project.run(harness=harness, budget=budget)
    assert first.aborted and len(project.records()) == 4
    again = project.run(harness=harness, budget=budget)  # nothing fixed yet
    assert again.aborted and "#5's parent failed too" in again.stop_reason and len(project.records()) == 5
    assert "#5's parent failed too" in project.cli("status", "metaexp.yaml").stdout
    fixed = project.run(harness={**harness, "env": {"FIXED": "1"}}, budget=budget)
    assert not fixed.aborted and fixed.stop_reason == "max_experiments=7 reached"
    status = project.cli("status", "metaexp.yaml").stdout  # the newest session's stop, not the abort
    assert ": max_experiments=7 reached" in status and "abort" not in status
    records = project.assert_consistent()
    assert [r.status is Status.CRASH for r in records[5:]] == [False, False]  # the fix held: no probe needed


def test_a_supervisor_whose_driver_is_gone_ends_without_a_traceback(tmp_path: Path) -> None:
    """The driver killed with kill -9 while a harness runs: the supervisor (whose stderr is the user's
    terminal) finds no one to reply to when the harness ends, and goes without a word."""
    import json
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "metaexp.evaluate.supervisor", str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    release = tmp_path / "release"
    wait = f"import os, time\nwhile not os.path.exists({str(release)!r}): time.sleep(0.01)"
    job = {
        "argv": [sys.executable, "-c", wait],
        "cwd": str(tmp_path),
        "env": dict(os.environ),
        "log_path": str(tmp_path / "run.log"),
        "timeout_s": 60,
        "grace_s": 0.5,
        "memory_mb": None,
        "cpus": None,
        "warm": None,
    }
    proc.stdin.write(json.dumps(job).encode() + b"\n")
    proc.stdin.flush()
    proc.stdout.close()  # the reader is gone, as a driver killed with kill -9 is
    release.touch()  # the harness ends; the supervisor replies into a pipe no one reads
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    assert proc.stderr is not None and proc.stderr.read() == b""
