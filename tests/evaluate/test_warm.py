"""harness.preload, the warm harness server: each run is a fork of one Python that imported the
listed modules once, under the same sandbox, timeout, kill and environment rules as a plain run."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Project
from helpers import comparable

from metaexp.record.records import Status


def survivors(mark: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if mark.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.fixture
def mark() -> Iterator[str]:
    token = f"metaexp-warm-{uuid.uuid4().hex}"
    yield token
    for pid in survivors(token):
        os.kill(pid, signal.SIGKILL)


WARM = {"command": "python evaluate.py", "immutable": ["evaluate.py"], "preload": ["json", "decimal"]}


def test_a_preloaded_harness_records_what_a_plain_one_does(make_project: Callable[[str], Project]) -> None:
    rows = []
    for name, harness in (("plain", {}), ("warm", WARM)):
        project = make_project(name)
        result = project.run(harness=harness, budget={"max_experiments": 8})
        assert result.stop_reason == "max_experiments=8 reached"
        rows.append([comparable(r, ("commit", "parent")) for r in project.assert_consistent()])
    assert rows[0] == rows[1]
    logs = project.root / ".metaexp/landscape/logs"
    assert "loss:" in (logs / "8.log").read_text()  # the fork's output is the run's log


LEAK = """\
import json, os
seen = getattr(json, "CANDIDATE_MARK", None)  # set by an earlier run, if forks shared state
json.CANDIDATE_MARK = os.environ["METAEXP_EXPERIMENT"]
print("seen:", 0 if seen is None else 1)
exec(open("evaluate.py").read())
"""


def test_a_candidates_module_state_never_reaches_the_next(project: Project) -> None:
    project.write("leak.py", LEAK)
    harness = {**WARM, "command": "python leak.py", "immutable": ["evaluate.py", "leak.py"]}
    project.run(harness=harness, metrics={"loss": {}, "seen": {}}, budget={"max_experiments": 5})
    records = project.assert_consistent()
    assert len(records) >= 5 and all(r.metrics["seen"] == 0 for r in records if r.status.harness_ran)


AS_MAIN = """\
import os, sys
main = sys.modules["__main__"]
ok = __name__ == "__main__" and main.__dict__ is globals() and sys.argv[0] == "main.py"
ok = ok and __file__ == os.path.abspath("main.py")  # absolute since Python 3.9
print("as_main:", int(ok))
exec(open("evaluate.py").read())
"""


def test_a_fork_runs_the_script_as_python_does(make_project: Callable[[str], Project]) -> None:
    """__name__, __file__ (absolute), argv and sys.modules["__main__"] as `python main.py` sets them."""
    for name, harness in (("plain", {}), ("warm", WARM)):
        project = make_project(name)
        project.write("main.py", AS_MAIN)
        harness = {**WARM, **harness, "command": "python main.py", "immutable": ["evaluate.py", "main.py"]}
        if name == "plain":
            harness.pop("preload")
        project.run(harness=harness, metrics={"loss": {}, "as_main": {}}, budget={"max_experiments": 2})
        ran = [r for r in project.assert_consistent() if r.status.harness_ran]
        assert ran and all(r.metrics["as_main"] == 1 for r in ran), name


HANG = """\
import os, subprocess, sys, time
mark = os.environ["MARK"]
if os.environ["METAEXP_EXPERIMENT"] == "2":
    forever = "import signal, time\\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
    forever += "while True: time.sleep(1)  # "
    subprocess.Popen([sys.executable, "-c", forever + mark], start_new_session=True)
    if os.fork() == 0:
        os.setsid()
        os.execv(sys.executable, [sys.executable, "-c", forever + mark + "-daemon"])
    print("hanging", flush=True)
    time.sleep(600)
exec(open("evaluate.py").read())
"""


def test_a_preloaded_harness_that_hangs_and_forks_is_killed_and_the_server_lives_on(
    project: Project, mark: str
) -> None:
    project.write("hang.py", HANG)
    harness = {**WARM, "command": "python hang.py", "immutable": ["evaluate.py", "hang.py"]}
    harness.update(timeout_s=3, grace_s=0.5, env={"MARK": mark})
    project.run(harness=harness, budget={"max_experiments": 4})
    records = project.assert_consistent()
    assert records[1].status is Status.TIMEOUT, records[1]
    assert "hanging" in (project.root / ".metaexp/landscape/logs/2.log").read_text()
    assert survivors(mark) == []  # the setsid child and the daemon died with the run
    assert all(not r.status.failed for r in records[2:]) and len(records) >= 4  # the server served on


SECRETS = """\
import os
server = open("/proc/1/environ", "rb").read() if os.path.exists("/proc/1/environ") else b""
print("leaked:", int(b"s3cret-value" in server or "WARM_TEST_SECRET" in os.environ))
print("checkout:", int(os.path.exists(os.environ["CHECKOUT"])))
exec(open("evaluate.py").read())
"""


def test_the_warm_server_holds_no_secret_and_sees_no_checkout(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metaexp.evaluate.isolation import available

    if available() != "bwrap":
        pytest.skip("the server's own view comes with bubblewrap")
    monkeypatch.setenv("WARM_TEST_SECRET", "s3cret-value")
    project.write("secrets.py", SECRETS)
    harness = {**WARM, "command": "python secrets.py", "immutable": ["evaluate.py", "secrets.py"]}
    harness["env"] = {"CHECKOUT": str(project.root / ".git")}
    project.run(
        harness={**harness, "sandbox": "required"},
        metrics={"loss": {}, "leaked": {}, "checkout": {}},
        budget={"max_experiments": 2},
    )
    records = project.assert_consistent()
    assert all(r.metrics["leaked"] == 0 and r.metrics["checkout"] == 0 for r in records), records


def test_a_module_that_cannot_be_preloaded_is_a_clear_crash(project: Project) -> None:
    project.run(harness={**WARM, "preload": ["no_such_module_xyz"]}, budget={"max_experiments": 1})
    rec = project.records()[0]
    assert rec.status is Status.CRASH
    assert "warm harness server did not start: cannot import no_such_module_xyz" in rec.reason, rec.reason
