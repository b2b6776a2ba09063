"""metaexp dashboard: optuna-dashboard on a finished run's real journal and artifact store, checked over
HTTP and in Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import LANDSCAPE, ROOT, Project, git
from helpers import get_json, start_dashboard

from metaexp.record.records import ExperimentRecord
from metaexp.record.storage import open_study

pytestmark = pytest.mark.timeout(240)


def new_project(root: Path) -> Project:
    """conftest's make_project, for a module-scoped run."""
    root.mkdir()
    for name in ("params.py", "evaluate.py"):
        shutil.copy(LANDSCAPE / name, root / name)
    shutil.copy(ROOT / "search_spaces" / "landscape.yaml", root / "space.yaml")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    return Project(root)


@dataclass
class Served:
    project: Project
    base: str  # http://127.0.0.1:PORT/dashboard
    api: str  # http://127.0.0.1:PORT/api
    printed: str
    records: dict[str, list[ExperimentRecord]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Two finished runs in one repository (one journal), and the dashboard on it."""
    project = new_project(tmp_path_factory.mktemp("dash") / "repo")
    project.run(budget={"max_experiments": 6})
    project.run(tag="bold", operator={"style": "bold"}, budget={"max_experiments": 5})
    project.spec()  # metaexp.yaml is the first run's spec again: the dashboard finds it in the cwd
    records = {tag: project.records(tag) for tag in ("landscape", "bold")}
    proc, base, printed = start_dashboard(project.root)
    try:
        yield Served(project, base, base.removesuffix("/dashboard") + "/api", printed, records)
    finally:
        proc.kill()
        proc.wait()


def study_ids(served: Served) -> dict[str, int]:
    return {s["study_name"]: s["study_id"] for s in get_json(f"{served.api}/studies")["study_summaries"]}


def test_the_api_lists_each_runs_study_with_its_trials_attrs_and_note(served: Served) -> None:
    ids = study_ids(served)
    assert set(ids) == {"landscape", "bold"}
    assert f"landscape: 6 trials  {served.base}/studies/{ids['landscape']}" in served.printed
    assert "compare-studies?ids=" in served.printed
    for tag, records in served.records.items():
        study = get_json(f"{served.api}/studies/{ids[tag]}")
        assert study["objective_names"] == ["loss"]
        trials = study["trials"]
        assert len(trials) == len(records)
        for trial in trials:
            attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
            rec = records[int(attrs["experiment"]) - 1]
            assert attrs["commit"] == rec.commit and attrs["status"] == str(rec.status)
            assert attrs["description"] == rec.description
            assert (attrs["island"], attrs["cost_usd"]) == ("0", "0.0")
            assert trial["values"] == [rec.value]
        note = study["note"]["body"]
        assert note.startswith(f"## metaexp run `{tag}`") and "max_experiments:" in note
        spec = json.loads({a["key"]: a["value"] for a in study["user_attrs"]}["spec"])
        assert spec["tag"] == tag and spec["strategy"]["name"] == "hill_climb"
    bold = json.loads(
        {a["key"]: a["value"] for a in get_json(f"{served.api}/studies/{ids['bold']}")["user_attrs"]}["spec"]
    )
    assert bold["operator"]["style"] == "bold"  # what tells the two runs apart


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser, asked for before the run fixture, so a skip costs nothing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed: CI must run the browser test (.ci/services installs it)")
    pytest.skip("chromium is not installed: the browser test needs it (apt-get install chromium)")


def rendered_text(chromium: str, url: str, profile: Path, wanted: list[str]) -> str:
    """The page's text after its scripts ran in headless Chromium (a longer budget when slow)."""
    text = ""
    for budget_ms in (10_000, 30_000):
        proc = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",  # we may be root (CI containers)
                "--disable-gpu",
                "--disable-dev-shm-usage",
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        body = re.sub(r"<(style|script)\b.*?</\1>", " ", proc.stdout, flags=re.S)
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))
        if all(w in text for w in wanted):
            break
    return text


def test_the_study_page_renders_the_trials_in_chromium(chromium: str, served: Served, tmp_path: Path) -> None:
    study_id = study_ids(served)["landscape"]
    records = served.records["landscape"]
    wanted = [f"Trial {n}" for n in range(len(records))] + [records[0].commit or ""]
    text = rendered_text(chromium, f"{served.base}/studies/{study_id}/trials", tmp_path / "profile", wanted)
    missing = [w for w in wanted if w not in text]
    assert not missing, f"not on the rendered trials page: {missing}\n{text[:2000]}"
    assert "landscape" in text and "baseline" in text


def screenshot(chromium: str, url: str, profile: Path, path: Path, size: tuple[int, int]) -> Path:
    """A PNG of the page as headless Chromium draws it after its scripts ran."""
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            f"--window-size={size[0]},{size[1]}",
            f"--screenshot={path}",
            url,
        ],
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    return path


def attrs_of(trial: dict[str, object]) -> dict[str, str]:
    return {a["key"]: a["value"] for a in trial["user_attrs"]}  # type: ignore[attr-defined]


def test_a_trial_page_shows_what_the_try_changed_in_chromium(
    chromium: str, served: Served, tmp_path: Path
) -> None:
    study_id = study_ids(served)["landscape"]
    trials = get_json(f"{served.api}/studies/{study_id}")["trials"]
    records = served.records["landscape"]
    rec = next(r for r in records[1:] if r.status.harness_ran)  # a try that changed params.py and ran
    assert rec.commit and rec.parent
    trial = next(t for t in trials if attrs_of(t)["experiment"] == str(rec.n))
    parent = next(t for t in trials if attrs_of(t)["commit"] == rec.parent)
    assert attrs_of(trial)["parent_trial"] == str(parent["number"])
    root = served.project.root
    assert f"artifacts from {root / '.metaexp' / 'artifacts'}" in served.printed
    # Over HTTP: the trial names its artifacts and the dashboard serves the try's own diff.
    named = {a["filename"]: a["artifact_id"] for a in trial["artifacts"]}
    assert set(named) == {"diff.patch", "log.txt", "params.py"}
    server = served.base.removesuffix("/dashboard")
    url = f"{server}/artifacts/{study_id}/{trial['trial_id']}/{named['diff.patch']}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        served_diff = resp.read().decode()
    changed = [
        line
        for line in git(root, "diff", rec.parent, rec.commit).splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed and all(line in served_diff for line in changed)
    # In Chromium: the trial page shows the artifacts and, in its user attrs, the changed lines (a text
    # artifact's content is a download, not shown in the page).
    page = f"{served.base}/studies/{study_id}/trials?numbers={trial['number']}"
    wanted = [f"Trial {trial['number']}", "Artifacts", *named, *(" ".join(line.split()) for line in changed)]
    text = html.unescape(rendered_text(chromium, page, tmp_path / "profile", wanted))
    missing = [w for w in wanted if w not in text]
    assert not missing, f"not on the rendered trial page: {missing}\n{text[:3000]}"
    shot = screenshot(chromium, page, tmp_path / "profile", tmp_path / "trial-page.png", (1400, 1000))
    print(f"dashboard screenshot: {shot}")
    import matplotlib.image

    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(shot).shape[:2] == (1000, 1400)


def test_the_compare_page_shows_both_runs_in_chromium(chromium: str, served: Served, tmp_path: Path) -> None:
    ids = study_ids(served)
    url = f"{served.base}/compare-studies?ids={ids['landscape']},{ids['bold']}"
    wanted = ["loss of landscape", "loss of bold"]  # the history plot's legend: both runs' trials drawn
    text = rendered_text(chromium, url, tmp_path / "profile", wanted)
    assert all(w in text for w in wanted), text[:2000]


def tcp_queues() -> dict[tuple[int, int], tuple[int, int]]:
    """(local port, remote port) -> (bytes not yet acknowledged, bytes not yet read by the program)
    for every IPv4 TCP socket here, as the kernel counts them in /proc/net/tcp."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, _state, queues = line.split()[1:5]
        tx, rx = (int(q, 16) for q in queues.split(":"))
        found[(int(local.split(":")[1], 16), int(remote.split(":")[1], 16))] = (tx, rx)
    return found


def read_by_server(port: int, client: socket.socket) -> bool:
    """The bytes `client` sent have reached the server on `port` and it has read them: it has
    accepted the connection and is inside its request."""
    mine = client.getsockname()[1]
    queues = tcp_queues()
    sent = queues.get((mine, port))
    got = queues.get((port, mine))
    return sent is not None and got is not None and sent[0] == 0 and got[1] == 0


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_the_dashboard_cleanly_even_inside_a_request(served: Served, stop: int) -> None:
    proc, base, _ = start_dashboard(served.project.root, "metaexp.yaml")
    assert proc.stdout is not None
    api = base.removesuffix("/dashboard") + "/api/studies"
    port = int(re.search(r":(\d+)/", base).group(1))  # type: ignore[union-attr]
    try:
        assert len(get_json(api)["study_summaries"]) == 2  # it serves
        # A request held open inside the server: its headers sent but for the last line.
        client = socket.create_connection(("127.0.0.1", port), timeout=60)
        client.sendall(b"GET /api/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        while not read_by_server(port, client):  # the kernel says when; no guessed sleep
            time.sleep(0.01)
        proc.send_signal(stop)
        stopping = proc.stdout.readline()  # the server has the signal
        assert stopping.startswith("stopping: answering the request in flight"), stopping
        client.sendall(b"Connection: close\r\n\r\n")
        reply = b""
        while chunk := client.recv(65536):
            reply += chunk
        client.close()
        out = proc.stdout.read()  # to the end: the process has exited (a hang: the test's timeout)
        proc.wait()
    finally:
        proc.kill()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], reply[:500]
    assert len(json.loads(body)["study_summaries"]) == 2
    assert proc.returncode == 0, out
    assert out.rstrip().endswith("dashboard stopped") and "Traceback" not in out, out


def test_a_busy_port_and_a_missing_spec_are_clear_errors(served: Served, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = served.project.cli("dashboard", "--port", str(port), check=False)
    assert proc.returncode == 1 and f"port {port} on 127.0.0.1 is in use" in proc.stderr
    empty = Project(tmp_path)
    proc = empty.cli("dashboard", check=False)
    assert proc.returncode == 1 and "no spec given and no metaexp.yaml in" in proc.stderr
    proc = empty.cli("dashboard", "--storage", "nothing.journal", check=False)
    assert proc.returncode == 1 and "no Optuna journal at" in proc.stderr


def test_the_note_follows_the_spec_and_a_resume_adds_nothing(project: Project) -> None:
    from optuna_dashboard import get_note

    project.run(budget={"max_experiments": 3})

    def note() -> tuple[int, str]:
        study = open_study(None, project.root, "landscape", "minimize")
        version = study._storage.get_study_system_attrs(study._study_id)["dashboard:note_ver"]
        return version, get_note(study)

    version, text = note()
    assert "max_experiments: 3" in text
    project.run(budget={"max_experiments": 3})  # nothing to do: same spec
    assert note() == (version, text)
    project.run(budget={"max_experiments": 4})  # raised budget: the note says so
    version2, text2 = note()
    assert version2 == version + 1 and "max_experiments: 4" in text2


def test_a_weighted_study_names_its_value_the_weighted_score(project: Project) -> None:
    project.write(
        "two.py", "import params\nprint('width:', params.WIDTH)\nexec(open('evaluate.py').read())\n"
    )
    project.run(
        harness={"command": "python two.py", "immutable": ["evaluate.py", "two.py"]},
        metrics={
            "loss": {"direction": "minimize"},
            "width": {"direction": "maximize", "pattern": r"width:\s*(\S+)"},
        },
        budget={"max_experiments": 3},
        objective={"mode": "weighted", "primary": "loss", "weights": {"loss": 1.0, "width": 0.5}},
    )
    study = open_study(None, project.root, "landscape", "maximize")
    assert study.metric_names == ["weighted_score"]
    assert study.user_attrs["spec"]["objective"]["weights"] == {"loss": 1.0, "width": 0.5}
