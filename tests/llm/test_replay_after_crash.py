"""Replaying a recording (`replay_key: request`) of a run in which a try crashed.

The proposal after a crash shows the model the crash's log tail; a Python traceback there names the
evaluation's sandbox, a directory with a random name (evaluate/sandbox.py: uuid4), so the replayed
run asks a request that was never recorded. Found by tests/llm/test_local_model.py, whose real model
wrote a params.py without X: the landscape's harness crashed and the next request missed on replay.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI
from helpers import comparable

from metaexp.record.records import Status

X_LINE = "X = 3.0  # first coordinate (optimum 1.5)"
WIDTH = "WIDTH = {}  # an integer setting (optimum 12)"


def diff(old: str, new: str) -> str:
    return f"Hypothesis: try it\nparams.py\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def operator(server: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {"kind": "llm", "model": "fake-model", "base_url": server.base_url, "notes_every": None, **extra}


def test_a_run_with_a_crash_replays_row_for_row(
    make_project: Any, server: FakeOpenAI, tmp_path: Path
) -> None:
    server.reply(diff(X_LINE, 'X = "three"  # first coordinate (optimum 1.5)'))  # float() fails: a crash
    server.reply(diff(WIDTH.format(7), WIDTH.format(12)))  # asked with the crash's log tail
    server.reply(diff(X_LINE, "X = 1.5  # first coordinate (optimum 1.5)"))
    budget = {"max_experiments": 4}  # the baseline and three proposals
    live = make_project("repo")
    live.run(operator=operator(server), budget=budget)
    recorded = live.records()
    assert [r.status for r in recorded] == [Status.KEEP, Status.CRASH, Status.KEEP, Status.KEEP]
    assert "Traceback" in server.requests[1]["messages"][-1]["content"]  # the tail went into the prompt
    recording = (live.root / ".metaexp/landscape/llm.jsonl").read_bytes()
    shutil.move(live.root, tmp_path / "recorded")  # replay at the same path: only the sandboxes differ

    again = make_project("repo")
    (again.root / "llm.jsonl").write_bytes(recording)
    again.run(operator=operator(server, replay="llm.jsonl", replay_key="request"), budget=budget)
    assert len(server.requests) == 3  # nothing was asked again
    strip = ("commit", "parent", "log_tail")
    assert [comparable(r, strip) for r in again.assert_consistent()] == [
        comparable(r, strip) for r in recorded
    ]
