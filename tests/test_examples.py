"""Every shipped example initialises, validates and runs through the loop."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from conftest import Project, git

from metaexp.commands.init import examples
from metaexp.record.records import Status


@pytest.mark.parametrize("name", examples())
def test_example_initialises_and_validates(tmp_path: Path, name: str) -> None:
    demo = Project(tmp_path / name)
    Project(tmp_path).cli("init", "--example", name, str(demo.root))
    assert "ok" in demo.cli("validate", "metaexp.yaml").stdout
    assert demo.cli("status", "metaexp.yaml").stdout.endswith(
        "no experiments yet (run: metaexp run metaexp.yaml)\n"
    )


def test_init_refuses_unknown_examples_and_non_empty_dirs(tmp_path: Path) -> None:
    proc = Project(tmp_path).cli("init", "--example", "nope", str(tmp_path / "x"), check=False)
    assert proc.returncode == 1 and "unknown example 'nope'" in proc.stderr and "landscape" in proc.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    proc = Project(tmp_path).cli("init", "--example", "landscape", str(tmp_path / "full"), check=False)
    assert proc.returncode == 1 and "not empty" in proc.stderr
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    fresh = tmp_path / "fresh"  # `git init fresh` first, as many start a project: still empty
    git(tmp_path, "init", "-q", str(fresh))
    Project(tmp_path).cli("init", "--example", "landscape", str(fresh))
    assert "ok" in Project(fresh).cli("validate", "metaexp.yaml").stdout
    used = tmp_path / "used"  # a repository with a commit is not
    git(tmp_path, "init", "-q", str(used))
    (used / "a.txt").write_text("a")
    git(used, "add", "a.txt")
    git(used, "commit", "-qm", "a")
    (used / "a.txt").unlink()
    git(used, "rm", "-q", "--cached", "a.txt")
    proc = Project(tmp_path).cli("init", "--example", "landscape", str(used), check=False)
    assert proc.returncode == 1 and "not empty" in proc.stderr


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the tiny-GPT example needs torch")
def test_tiny_gpt_trains_and_improves_the_record(tmp_path: Path) -> None:
    demo = Project(tmp_path / "tg")
    Project(tmp_path).cli("init", "--example", "tiny-gpt", str(demo.root))
    spec = yaml.safe_load((demo.root / "metaexp.yaml").read_text())
    spec["harness"]["time_budget_s"] = 1
    spec["budget"] = {"max_experiments": 2}
    spec["operator"]["style"] = "global"
    (demo.root / "metaexp.yaml").write_text(yaml.safe_dump(spec))
    demo.cli("run", "metaexp.yaml")
    records = demo.assert_consistent("tiny-gpt")
    assert [r.status.harness_ran for r in records] == [True, True]
    base = records[0]
    assert base.status is Status.KEEP and 1.0 < base.value < 6.0  # bits per character, above the floor
    assert base.metrics["peak_mem_mb"] > 0
    assert set(records[1].params) == set(
        yaml.safe_load((demo.root / "search_spaces/tiny_gpt.yaml").read_text())
    )
