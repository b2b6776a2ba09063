"""Candidates that touch files they must not are recorded as rejected and never run."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest
from conftest import Project

from metaexp.candidate import Candidate
from metaexp.operators import InvalidProposal, LineageState
from metaexp.record.records import ExperimentRecord, Status


class Scripted:
    """An operator that proposes a fixed list of edits, one per experiment."""

    name = "scripted"

    def __init__(self, edits: list[dict[str, bytes] | None]) -> None:
        self.edits = edits

    def propose(self, state: LineageState, n: int, rng: random.Random) -> Candidate:
        edit = self.edits[(n - 2) % len(self.edits)]
        if edit is None:
            raise InvalidProposal("garbage reply")
        return Candidate(state.commit, edit, f"edit {', '.join(edit)}")

    def observe(self, record: ExperimentRecord) -> None:
        pass

    def params_of(self, files: Mapping[str, bytes]) -> dict[str, Any]:
        return {}


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    edits: list[Any] = []
    monkeypatch.setattr("metaexp.run.plan.make_operator", lambda ctx: Scripted(edits))
    return edits


def test_edits_to_the_harness_or_other_files_are_rejected(project: Project, scripted: list[Any]) -> None:
    project.write("other.py", "SECRET_SAUCE = 1\n")
    scripted.extend(
        [
            {"evaluate.py": b"print('loss: -1000')\n"},
            {"other.py": b"SECRET_SAUCE = 2\n"},
            {"params.py": b"X = 1.5\nY = -0.5\nWIDTH = 12\n", "evaluate.py": b"print('loss: -1')\n"},
            {"params.py": b"X = 1.5\nY = -0.5\nWIDTH = 12\n"},
        ]
    )
    project.run(budget={"max_experiments": 2})
    records = project.assert_consistent()
    assert [r.status for r in records] == [
        Status.KEEP,
        Status.REJECTED,
        Status.REJECTED,
        Status.REJECTED,
        Status.KEEP,
    ]
    assert "immutable harness file(s): evaluate.py" in records[1].reason
    assert "outside target: other.py" in records[2].reason
    assert "evaluate.py" in records[3].reason
    for rec in records[1:4]:
        assert rec.commit and rec.harness_s == 0.0  # a recorded try, never run
        assert not (project.root / f".metaexp/landscape/logs/{rec.n}.log").exists()
    assert records[4].value == 0.0


def test_invalid_proposals_stop_after_a_streak(project: Project, scripted: list[Any]) -> None:
    scripted.append(None)
    result = project.run(budget={"max_experiments": 5, "max_invalid_streak": 3})
    records = project.assert_consistent()
    assert result.aborted and "3 rejected/invalid" in result.stop_reason
    assert [r.status for r in records] == [Status.KEEP] + [Status.INVALID] * 3
    assert records[1].commit is None and records[1].reason == "garbage reply"


def test_target_files_that_do_not_parse_are_invalid_and_never_run(
    project: Project, scripted: list[Any]
) -> None:
    project.write("config.yaml", "lr: 0.1\n")
    project.write("table.json", "[1, 2]\n")
    project.write("blob.bin", "")
    scripted.extend(
        [
            {"params.py": b"X = (1.5\nY = -0.5\nWIDTH = 12\n"},
            {"config.yaml": b"lr: [0.1\n"},
            {"table.json": b"[1, 2,]\n"},
            {"blob.bin": b"\xff\xfe not text, not checked"},
            {"params.py": b"X = 1.5\nY = -0.5\nWIDTH = 12\n"},
        ]
    )
    result = project.run(
        target=["params.py", "config.yaml", "table.json", "blob.bin"], budget={"max_experiments": 3}
    )
    records = project.assert_consistent()
    statuses = [r.status for r in records]
    assert statuses == [Status.KEEP, *[Status.INVALID] * 3, Status.DISCARD, Status.KEEP]  # blob.bin: ran
    assert "params.py does not parse as Python: '(' was never closed (line 1" in records[1].reason
    assert "config.yaml does not parse as YAML" in records[2].reason
    assert "table.json does not parse as JSON" in records[3].reason
    for rec in records[1:4]:
        assert rec.harness_s == 0.0 and not (project.root / f".metaexp/landscape/logs/{rec.n}.log").exists()
    assert result.tally.ran == 3 and records[5].value == 0.0


def test_a_failed_precheck_is_invalid_and_costs_no_harness_run(project: Project, scripted: list[Any]) -> None:
    check = "import sys\nimport params\nif params.WIDTH > 16:\n    sys.exit('WIDTH above 16: too wide')\n"
    project.write("check.py", check)
    scripted.extend(
        [
            {"params.py": b"X = 1.5\nY = -0.5\nWIDTH = 20\n"},
            {"params.py": b"X = 1.5\nY = -0.5\nWIDTH = 12\n"},
        ]
    )
    harness = {"command": "python evaluate.py", "immutable": ["evaluate.py", "check.py"]}
    result = project.run(harness={**harness, "precheck": "python check.py"}, budget={"max_experiments": 2})
    records = project.assert_consistent()
    assert [r.status for r in records] == [Status.KEEP, Status.INVALID, Status.KEEP]
    bad = records[1]
    assert bad.reason == "precheck failed (exit code 1): WIDTH above 16: too wide", bad.reason
    logs = project.root / ".metaexp/landscape/logs"
    assert (logs / "2.precheck.log").exists() and not (logs / "2.log").exists()  # the harness never ran
    assert (logs / "3.precheck.log").exists() and not (logs / "1.precheck.log").exists()  # not the baseline
    assert result.tally.ran == 2 and records[2].value == 0.0
