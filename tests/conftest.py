"""Shared fixtures: real git repositories in tmp dirs, specs written as YAML."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from metaexp.record.records import ExperimentRecord, Status, read_records
from metaexp.record.storage import open_study
from metaexp.run import RunResult, run
from metaexp.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
LANDSCAPE = ROOT / "harnesses" / "landscape"


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


class Project:
    """A git repo with the landscape example: params.py (target), evaluate.py (harness)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def spec(self, **overrides: Any) -> Path:
        data = yaml.safe_load((LANDSCAPE / "metaexp.yaml").read_text())
        data["operator"]["space"] = "space.yaml"
        data["budget"] = {"max_experiments": 8}
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        path = self.root / "metaexp.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def write(self, name: str, text: str, commit: bool = True) -> None:
        (self.root / name).write_text(text)
        if commit:
            git(self.root, "add", name)
            git(self.root, "commit", "-qm", f"add {name}")

    def run(self, **overrides: Any) -> RunResult:
        return run(load_spec(self.spec(**overrides)), out=io.StringIO())

    def records(self, tag: str = "landscape") -> list[ExperimentRecord]:
        return read_records(self.root / ".metaexp" / tag / "experiments.jsonl")

    def cli(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "metaexp", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"metaexp {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def assert_consistent(self, tag: str = "landscape") -> list[ExperimentRecord]:
        """git refs, results.tsv, experiments.jsonl and the Optuna study agree."""
        records = self.records(tag)
        numbers = [r.n for r in records]
        assert numbers == list(range(1, len(records) + 1)), numbers
        rows = (self.root / ".metaexp" / tag / "results.tsv").read_text().splitlines()[1:]
        assert [row.split("\t")[0] for row in rows] == [(r.commit or "-")[:7] for r in records]
        study = open_study(None, self.root, tag, "minimize")
        trials = study.get_trials(deepcopy=False)
        tried = [r.n for r in records if r.status is not Status.MIGRATE]  # a migrant is a copy: no trial
        assert sorted(t.user_attrs["experiment"] for t in trials) == tried
        for t in trials:
            rec = records[t.user_attrs["experiment"] - 1]
            assert t.user_attrs["status"] == str(rec.status)
            if len(study.directions) == 1:
                assert t.value == (rec.value if not rec.status.failed else None)
            else:  # pareto: one value per compared metric
                assert (t.values is not None) == (not rec.status.failed and rec.value is not None)
        refs = git(
            self.root, "for-each-ref", "--format=%(refname) %(objectname)", f"refs/metaexp/{tag}/tried"
        )
        tried = {int(line.split()[0].rsplit("/", 1)[1]): line.split()[1] for line in refs.splitlines()}
        assert tried == {r.n: r.commit for r in records if r.commit}
        accepted = [r for r in records if r.status.accepted]
        single = git(self.root, "branch", "--list", f"autoexp/{tag}").strip()
        if accepted and single:  # population runs check their island branches themselves
            assert git(self.root, "rev-parse", f"autoexp/{tag}").strip() == accepted[-1].commit
        return records


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[[str], Project]:
    """Several projects in one test."""

    def make(name: str) -> Project:
        root = tmp_path / name
        root.mkdir()
        for fname in ("params.py", "evaluate.py"):
            (root / fname).write_bytes((LANDSCAPE / fname).read_bytes())
        (root / "space.yaml").write_bytes((ROOT / "search_spaces" / "landscape.yaml").read_bytes())
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "start")
        return Project(root)

    return make


@pytest.fixture
def project(make_project: Callable[[str], Project]) -> Project:
    return make_project("repo")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray runtime for the whole test session (every module that needs Ray uses this)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=100 * 2**20,
            configure_logging=False,
        )
    yield
    ray.shutdown()
