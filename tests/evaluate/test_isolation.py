"""The sandbox against attack code: a target file (imported by the immutable harness, so every
experiment runs it; the perturb operator only moves its constants) that goes for the user's
checkout, git, the ledger, the frozen harness, files outside the repo, the network, secrets and
the supervisor, run through `metaexp run` as a user would.

Each attack prints whether it got through, so a test also knows the attack ran. Under
`harness.sandbox: off` (the harness runs as you) the same attacks get through: those runs show
what the tests catch, and what `off` means."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LANDSCAPE, Project, git

from metaexp.evaluate.isolation import available
from metaexp.record.records import Status


@pytest.fixture(autouse=True)
def bubblewrap() -> None:
    if available() != "bwrap":
        if os.environ.get("CI") == "true":
            pytest.fail("bubblewrap does not work here: CI must test the sandbox (.ci/services installs it)")
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap, or run .ci/services)")


ATTEMPT = """
import os, subprocess, sys
ATTACKING = int(os.environ["METAEXP_EXPERIMENT"]) >= 2  # the baseline runs clean


def attempt(name, fn):
    if not ATTACKING:
        return
    try:
        fn()
        print("ATTACK", name, "got through", flush=True)
    except Exception as exc:
        print("ATTACK", name, "stopped", type(exc).__name__, exc, flush=True)
"""


def attack(project: Project, code: str, budget: int = 3, **harness: Any) -> subprocess.CompletedProcess[str]:
    """Commit params.py with `code` appended and run `metaexp run` with `harness` settings."""
    original = (LANDSCAPE / "params.py").read_text()
    project.write("params.py", original + ATTEMPT + code)
    project.spec(harness=harness, budget={"max_experiments": budget})
    return project.cli("run", "metaexp.yaml", check=False)


def outcomes(project: Project) -> dict[str, set[str]]:
    """Attack name -> {"got", "stopped"}, from every experiment's log."""
    seen: dict[str, set[str]] = {}
    for log in (project.root / ".metaexp/landscape/logs").glob("*.log"):
        for line in log.read_text().splitlines():
            if line.startswith("ATTACK "):
                name, verdict = line.split()[1], line.split()[2]
                seen.setdefault(name, set()).add(verdict)
    return seen


# --- the frozen harness, the checkout, git, files outside the repo

FILES = """
from pathlib import Path
REPO, OUTSIDE = Path(os.environ["REPO"]), Path(os.environ["OUTSIDE"])


def tamper(path):  # the frozen harness rewritten in place: same size, its times restored
    st = os.stat(path)
    forged = open(path).read().replace('{loss:.6f}', '{-1.0:.6f}')
    assert '{-1.0:.6f}' in forged, "not the landscape harness"
    with open(path, "r+") as fh:
        fh.write(forged)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def git(*args):
    subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True)


attempt("harness-link", lambda: tamper(os.path.realpath("evaluate.py")))
attempt("harness-base", lambda: tamper(REPO / ".metaexp/landscape/base/evaluate.py"))
attempt("checkout-append", lambda: open(REPO / "evaluate.py", "a").write("# pwned\\n"))
attempt("checkout-create", lambda: (REPO / "pwned.txt").write_text("pwned"))
attempt("git-hooks", lambda: git("config", "core.hooksPath", "/tmp/evil-hooks"))
attempt("git-alias", lambda: git("config", "alias.st", "!touch /tmp/pwned"))
attempt("git-ref", lambda: git("update-ref", "refs/heads/evil", "HEAD"))
attempt("git-best", lambda: git("update-ref", "refs/metaexp/landscape/best", "HEAD~1"))
attempt("outside-write", lambda: (OUTSIDE / "pwned.txt").write_text("pwned"))
attempt("outside-read", lambda: print("READ", (OUTSIDE / "secret.txt").read_text()))
"""
FILE_ATTACKS = {
    "harness-link",
    "harness-base",
    "checkout-append",
    "checkout-create",
    "git-hooks",
    "git-alias",
    "git-ref",
    "git-best",
    "outside-write",
    "outside-read",
}


def files_attack(project: Project, tmp_path: Path, sandbox: str) -> subprocess.CompletedProcess[str]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s3cret")
    env = {"REPO": str(project.root), "OUTSIDE": str(outside)}
    return attack(project, FILES, command="python evaluate.py", env=env, sandbox=sandbox)


def test_the_sandbox_keeps_the_harness_away_from_the_repo_git_and_other_files(
    project: Project, tmp_path: Path
) -> None:
    proc = files_attack(project, tmp_path, "required")
    assert proc.returncode == 0, proc.stderr
    assert "sandbox: bubblewrap" in proc.stderr
    seen = outcomes(project)
    assert set(seen) == FILE_ATTACKS  # every attack ran
    # pytest's repo lies under /tmp, so inside the sandbox its folders are the sandbox's own private
    # /tmp: writing there "works" and reaches nothing (the checkout is checked below)
    assert {name for name, verdict in seen.items() if "got" in verdict} <= {
        "checkout-append",
        "checkout-create",
    }
    assert (project.root / "evaluate.py").read_bytes() == (LANDSCAPE / "evaluate.py").read_bytes()
    records = project.assert_consistent()
    assert [r.status for r in records if r.status.failed] == []
    assert min(r.value for r in records if r.value is not None) >= 0  # never the tampered harness's -1
    base = project.root / ".metaexp/landscape/base/evaluate.py"
    assert base.read_bytes() == (LANDSCAPE / "evaluate.py").read_bytes()
    assert git(project.root, "status", "--porcelain") == "?? metaexp.yaml\n"  # the spec the test wrote
    config = git(project.root, "config", "--list", "--local")
    assert "hookspath" not in config.lower() and "alias" not in config
    assert git(project.root, "branch", "--list", "evil") == ""
    best = min((r for r in records if r.status.accepted), key=lambda r: r.value)
    assert git(project.root, "rev-parse", "refs/metaexp/landscape/best").strip() == best.commit
    assert not (tmp_path / "outside" / "pwned.txt").exists()
    assert "s3cret" not in "".join(p.read_text() for p in (project.root / ".metaexp").rglob("*.log"))


def test_without_the_sandbox_the_same_attacks_get_through_and_a_base_write_is_still_caught(
    project: Project, tmp_path: Path
) -> None:
    proc = files_attack(project, tmp_path, "off")
    assert "sandbox: off" in proc.stderr
    got = outcomes(project)
    assert {n for n, v in got.items() if "got" in v} >= FILE_ATTACKS - {"git-best"}  # the run moves best back
    assert (tmp_path / "outside" / "pwned.txt").exists()
    assert "pwned.txt" in git(project.root, "status", "--porcelain")
    # the tampered harness never scores: ctime gives the write away, the run restores the base
    records = project.records()
    assert all(r.value is None or r.value >= 0 for r in records)
    tampered = [r for r in records if r.n >= 2]
    assert tampered and all(r.status is Status.CRASH and "evaluate.py" in r.reason for r in tampered)
    base = project.root / ".metaexp/landscape/base/evaluate.py"
    assert base.read_bytes() == (LANDSCAPE / "evaluate.py").read_bytes()


def test_a_base_changed_between_runs_stops_the_resume_and_is_restored(project: Project) -> None:
    project.spec(budget={"max_experiments": 2})
    project.cli("run", "metaexp.yaml")
    base = project.root / ".metaexp/landscape/base/evaluate.py"
    st = base.stat()
    os.chmod(base, 0o644)
    base.write_text(base.read_text().replace("{loss:.6f}", "{-1.0:.6f}"))  # same size
    os.chmod(base, st.st_mode)
    os.utime(base, ns=(st.st_atime_ns, st.st_mtime_ns))
    project.spec(budget={"max_experiments": 4})
    proc = project.cli("run", "metaexp.yaml", check=False)
    assert proc.returncode == 1
    assert "evaluate.py" in proc.stderr and "restored from git" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert base.read_bytes() == (LANDSCAPE / "evaluate.py").read_bytes()
    project.cli("run", "metaexp.yaml")
    records = project.assert_consistent()
    assert len(records) == 4 and all(r.value is None or r.value >= 0 for r in records)


# --- the ledger

FORGE = """
def forge():
    ledger = os.path.join(os.environ["REPO"], ".metaexp/landscape/experiments.jsonl")
    last = open(ledger).read().splitlines()[-1]
    with open(ledger, "a") as fh:
        fh.write(last + "\\n")


if os.environ["METAEXP_EXPERIMENT"] == "3":
    attempt("forge", forge)
"""


@pytest.mark.parametrize("sandbox", ["required", "off"])
def test_a_forged_ledger_line_never_counts(project: Project, sandbox: str) -> None:
    proc = attack(project, FORGE, budget=4, env={"REPO": str(project.root)}, sandbox=sandbox)
    assert proc.returncode == 0, proc.stderr
    lines = (project.root / ".metaexp/landscape/experiments.jsonl").read_text().splitlines()
    numbers = [json.loads(line)["n"] for line in lines]
    if sandbox == "required":
        assert outcomes(project) == {"forge": {"stopped"}}
        assert numbers == [1, 2, 3, 4]
        return
    assert outcomes(project) == {"forge": {"got"}} and numbers == [1, 2, 2, 3, 4]
    project.spec(budget={"max_experiments": 6})  # the resume refuses the forged line
    resumed = project.cli("run", "metaexp.yaml")
    assert "experiments.quarantine.jsonl" in resumed.stdout + resumed.stderr
    records = project.assert_consistent()
    assert [r.n for r in records] == [1, 2, 3, 4, 5, 6]
    aside = (project.root / ".metaexp/landscape/experiments.quarantine.jsonl").read_text().splitlines()
    assert [json.loads(line)["n"] for line in aside] == [2]


# --- processes: a setsid child, a daemon, killing the supervisor


PROCESSES = """
import signal
MARK = os.environ["MARK"]


def detach():
    forever = "import time\\nwhile True: time.sleep(1)  # " + MARK
    subprocess.Popen([sys.executable, "-c", forever], start_new_session=True)
    if os.fork() == 0:  # a daemon: double fork, new session
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", forever + "-daemon"])
        os._exit(0)


attempt("detach", detach)
if os.environ["METAEXP_EXPERIMENT"] == "2":
    attempt("kill-supervisor", lambda: os.kill(os.getppid(), signal.SIGKILL))
"""


def survivors(mark: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if mark.encode() in cmdline:
            found.append(int(pid))
    return found


@pytest.fixture
def mark() -> Iterator[str]:
    token = f"metaexp-test-{uuid.uuid4().hex}"
    yield token
    for pid in survivors(token):  # what an unsandboxed run left behind
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sandbox", ["required", "off"])
def test_nothing_a_harness_starts_outlives_the_run_even_when_it_kills_its_supervisor(
    project: Project, mark: str, sandbox: str
) -> None:
    proc = attack(project, PROCESSES, env={"MARK": mark}, sandbox=sandbox)
    assert proc.returncode == 0, proc.stderr
    records = project.records()
    assert [r.n for r in records] == [1, 2, 3]
    if sandbox == "required":  # the supervisor is outside the harness's PID namespace
        assert all(not r.status.failed for r in records), [r.reason for r in records]
        assert survivors(mark) == []
    else:  # as you: it can kill the supervisor, and what it detached then lives on
        assert records[1].status is Status.CRASH and "supervisor died" in records[1].reason
        assert survivors(mark)


# --- the network


@pytest.mark.parametrize("network", [False, True])
def test_the_network_is_closed_unless_harness_network(project: Project, network: bool) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    code = (
        "import socket\n"
        "attempt('connect', lambda: socket.create_connection(('127.0.0.1', int(os.environ['PORT'])), 5)"
        ".sendall(b'hello'))\n"
    )
    port = str(listener.getsockname()[1])
    try:
        proc = attack(project, code, env={"PORT": port}, sandbox="required", network=network)
        assert proc.returncode == 0, proc.stderr
        assert ("the network" if network else "no network") in proc.stderr
        try:
            conn, _ = listener.accept()  # the connection is queued by the time the run has ended
            conn.close()
            reached = True
        except BlockingIOError:
            reached = False
    finally:
        listener.close()
    assert reached is network
    assert outcomes(project) == {"connect": {"got" if network else "stopped"}}


# --- secrets

SECRETS = {
    "DATABASE_URL": "postgres://u:pw-db@h/db",
    "API_KEY": "key-api",
    "SECRET_KEY": "key-secret",
    "GOOGLE_APPLICATION_CREDENTIALS": "/secret/creds-google.json",
    "NPM_AUTH": "key-npm",
    "OPENAI_API_KEY": "sk-openai",
    "PYTHONCREDS": "https://u:pw-python@pypi.example/simple",  # an allowed name, a credential value
}

READ_ENV = """
def dump():
    print("ENV", sorted(os.environ.items()))
    print("PARENT", open(f"/proc/{os.getppid()}/environ").read())  # the supervisor's, unsandboxed


attempt("environment", dump)
"""


def test_the_harness_sees_only_the_allow_list_and_what_pass_env_names(project: Project) -> None:
    original = (LANDSCAPE / "params.py").read_text()
    project.write("params.py", original + ATTEMPT + READ_ENV)
    project.spec(harness={"sandbox": "required", "pass_env": ["NPM_AUTH"]}, budget={"max_experiments": 2})
    proc = project.cli("run", "metaexp.yaml", env=SECRETS)
    assert proc.returncode == 0
    log = (project.root / ".metaexp/landscape/logs/2.log").read_text()
    assert "ENV " in log and "key-npm" in log  # named by pass_env
    leaked = [name for name, value in SECRETS.items() if name != "NPM_AUTH" and value in log]
    assert leaked == []


# --- when isolation is missing


def test_sandbox_required_refuses_to_run_without_isolation(project: Project) -> None:
    project.spec(harness={"sandbox": "required"}, budget={"max_experiments": 2})
    hidden = {"METAEXP_SANDBOX_TOOLS": ""}
    proc = project.cli("run", "metaexp.yaml", env=hidden, check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "error: harness.sandbox: required" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (project.root / ".metaexp/landscape/experiments.jsonl").exists()
    checked = project.cli("validate", "metaexp.yaml", env=hidden, check=False)
    assert checked.returncode == 1 and "harness.sandbox: required" in checked.stdout + checked.stderr
    project.spec(budget={"max_experiments": 2})  # auto: runs, and says it is not isolated
    ran = project.cli("run", "metaexp.yaml", env=hidden)
    assert "sandbox: none" in ran.stderr
    assert len(project.assert_consistent()) == 2


def test_a_gpu_request_on_a_machine_without_gpus_is_one_clear_error(project: Project) -> None:
    if Path("/dev/nvidia0").exists():
        pytest.skip("this machine has a GPU")
    project.spec(ray={"eval_resources": {"num_gpus": 1}}, budget={"max_experiments": 2})
    proc = project.cli("run", "metaexp.yaml", check=False)
    assert proc.returncode == 1, proc.stdout
    assert "error: ray.eval_resources: num_gpus=1" in proc.stderr and "GPU" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_forged_base_tar_is_rebuilt_from_git(project: Project) -> None:
    project.spec(budget={"max_experiments": 2})
    project.cli("run", "metaexp.yaml")
    out = project.root / ".metaexp/landscape"
    forged = (out / "base.tar").read_bytes().replace(b"{loss:.6f}", b"{-1.0:.6f}")  # same size
    (out / "base.tar").write_bytes(forged)
    project.spec(budget={"max_experiments": 4})
    project.cli("run", "metaexp.yaml")
    assert b"{-1.0:.6f}" not in (out / "base.tar").read_bytes()
    assert (out / "base/evaluate.py").read_bytes() == (LANDSCAPE / "evaluate.py").read_bytes()
    assert all(r.value is not None and r.value >= 0 for r in project.assert_consistent())


def test_a_python_that_lives_under_tmp_is_seen_inside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A virtual environment under /tmp (a CI clone, a scratch checkout) is bound over the private
    /tmp, not hidden by it."""
    from metaexp.evaluate import isolation

    assert str(tmp_path).startswith("/tmp/")
    tool = tmp_path / "venv" / "bin" / "hello"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\necho inside\n")
    tool.chmod(0o755)
    monkeypatch.setattr(isolation, "_python_paths", lambda: (str(tmp_path / "venv"),))
    box = tmp_path / "box"
    box.mkdir()
    argv = isolation.wrap(isolation.Isolation("bwrap", ""), [str(tool)], box, {}, False, False)
    ran = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert ran.stdout == "inside\n", ran.stderr
