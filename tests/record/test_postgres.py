"""PostgreSQL as a run's Optuna storage, against a real server (METAEXP_TEST_POSTGRES; .ci/services)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from conftest import ROOT, Project

from metaexp.record.records import ExperimentRecord, Status
from metaexp.record.storage import masked, open_study

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def pg_url() -> str:
    url = os.environ.get("METAEXP_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("METAEXP_TEST_POSTGRES is not set: CI must test PostgreSQL (.ci/run exports it)")
        pytest.skip("METAEXP_TEST_POSTGRES is not set (e.g. postgresql+psycopg2://USER:PW@127.0.0.1/DB)")
    return url


@pytest.fixture
def tag(pg_url: str) -> Iterator[str]:
    """A prefix for this test's study names; its studies are deleted afterwards."""
    import optuna

    prefix = f"pg-{uuid.uuid4().hex[:8]}"
    yield prefix
    storage = optuna.storages.RDBStorage(pg_url)
    for study in storage.get_all_studies():
        if study.study_name.startswith(prefix):
            optuna.delete_study(study_name=study.study_name, storage=storage)
    storage.remove_session()
    storage.engine.dispose()


def assert_study_agrees(
    project: Project, pg_url: str, tag: str, shown: str | None = None
) -> list[ExperimentRecord]:
    """One COMPLETE/FAIL trial per tried experiment, numbered like the records and told once."""
    records = project.records(tag)
    assert [r.n for r in records] == list(range(1, len(records) + 1))
    study = open_study(pg_url, project.root, tag, "minimize")
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.user_attrs["experiment"] for t in trials) == [
        r.n for r in records if r.status is not Status.MIGRATE
    ]
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    for t in trials:
        rec = records[t.user_attrs["experiment"] - 1]
        assert (t.user_attrs["commit"], t.user_attrs["status"]) == (rec.commit, str(rec.status))
        assert t.value == (rec.value if not rec.status.failed else None)
    assert study.metric_names == ["loss"]
    assert study.user_attrs["spec"]["storage"] == (shown or masked(pg_url))  # the password is not shown
    return records


def test_a_run_on_postgres_agrees_with_its_ledger_and_the_dashboard_shows_it(
    project: Project, pg_url: str, tag: str
) -> None:
    from helpers import get_json, start_dashboard

    project.spec(tag=tag, storage=pg_url, budget={"max_experiments": 5})
    project.cli("run", "metaexp.yaml")
    records = assert_study_agrees(project, pg_url, tag)
    assert len(records) == 5 and not (project.root / ".metaexp" / "optuna.journal").exists()
    proc, base, printed = start_dashboard(project.root)
    try:
        assert pg_url.rsplit("@", 1)[1] in printed and pg_url.split("://")[1].split("@")[0] not in printed
        studies = get_json(base.removesuffix("/dashboard") + "/api/studies")["study_summaries"]
        ours = [s for s in studies if s["study_name"] == tag]
        assert len(ours) == 1
        study = get_json(base.removesuffix("/dashboard") + f"/api/studies/{ours[0]['study_id']}")
        assert len(study["trials"]) == 5 and study["objective_names"] == ["loss"]
    finally:
        proc.kill()
        proc.wait()


def test_a_run_killed_after_its_jsonl_line_is_repaired_in_postgres(
    project: Project, pg_url: str, tag: str
) -> None:
    project.spec(tag=tag, storage=pg_url, budget={"max_experiments": 5})
    killed = project.cli("run", "metaexp.yaml", env={"METAEXP_CRASHPOINT": "after-jsonl:3"}, check=False)
    assert killed.returncode == -signal.SIGKILL
    project.cli("run", "metaexp.yaml")
    assert len(assert_study_agrees(project, pg_url, tag)) == 5


def test_several_processes_write_to_one_postgres_at_once(
    make_project: Callable[[str], Project], pg_url: str, tag: str
) -> None:
    """Three runs (three repositories, as on three machines) share one storage, all at the same time."""
    projects = {f"{tag}-{k}": make_project(k) for k in "abc"}
    procs = []
    for run_tag, project in projects.items():
        spec = project.spec(tag=run_tag, storage=pg_url, budget={"max_experiments": 6}, seed=len(procs))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "metaexp", "run", str(spec)],
                cwd=project.root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [proc.communicate(timeout=240)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], "\n".join(outputs)
    for run_tag, project in projects.items():
        assert len(assert_study_agrees(project, pg_url, run_tag)) == 6


def proxy_snippet() -> str:
    """docs/storage.md's storage_proxy.py, exactly as the docs show it."""
    docs = (ROOT / "docs" / "storage.md").read_text()
    match = re.search(r"```python\n(# storage_proxy\.py.*?)```", docs, flags=re.S)
    assert match, "docs/storage.md lost its storage_proxy.py snippet"
    return match.group(1)


def test_a_run_through_the_grpc_proxy_of_the_docs(project: Project, pg_url: str, tag: str) -> None:
    try:
        import grpc  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("grpcio is not installed: the dev extra installs it")
        pytest.skip("grpcio is not installed (pip install 'metaexp[grpc]')")
    (project.root.parent / "storage_proxy.py").write_text(proxy_snippet())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OPTUNA_STORAGE": pg_url, "PROXY_HOST": "127.0.0.1", "PROXY_PORT": str(port)}
    proxy = subprocess.Popen(
        [sys.executable, "storage_proxy.py"],
        cwd=project.root.parent,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proxy.poll() is None, "the proxy exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the proxy did not listen within 90 s"
                time.sleep(0.2)
        project.spec(tag=tag, storage=f"grpc://127.0.0.1:{port}", budget={"max_experiments": 4})
        project.cli("run", "metaexp.yaml")
    finally:
        proxy.kill()
        proxy.wait()
    assert len(assert_study_agrees(project, pg_url, tag, shown=f"grpc://127.0.0.1:{port}")) == 4
