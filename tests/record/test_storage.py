"""The journal storage a process keeps per file: reopened without a replay, still current, and
dropped when the file is not the one it replayed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from metaexp.record.storage import make_storage

pytestmark = pytest.mark.timeout(60)

WRITER = """
import sys, optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
storage = JournalStorage(JournalFileBackend(sys.argv[1]))
study = optuna.create_study(storage=storage, study_name=sys.argv[2], load_if_exists=True)
study.add_trial(optuna.trial.create_trial(value=float(sys.argv[3])))
"""


def write_elsewhere(path: Path, study: str, value: float) -> None:
    """Another process appends a study's trial to the journal."""
    subprocess.run([sys.executable, "-c", WRITER, str(path), study, str(value)], check=True)


def values(storage: object, study: str) -> list[float]:
    loaded = optuna.load_study(study_name=study, storage=storage)  # type: ignore[arg-type]
    return [t.value for t in loaded.get_trials(deepcopy=False) if t.value is not None]


def test_a_reopened_journal_is_the_same_storage_and_sees_other_processes_writes(tmp_path: Path) -> None:
    path = tmp_path / ".metaexp" / "optuna.journal"
    assert make_storage(None, tmp_path) is not make_storage(None, tmp_path)  # empty: not kept
    write_elsewhere(path, "run-a", 1.0)
    first = make_storage(None, tmp_path)
    assert values(first, "run-a") == [1.0]
    write_elsewhere(path, "run-a", 2.0)
    again = make_storage(str(path), tmp_path)  # the same file, named another way
    assert again is first
    assert values(again, "run-a") == [1.0, 2.0]


def test_a_replaced_journal_is_replayed_afresh(tmp_path: Path) -> None:
    path = tmp_path / ".metaexp" / "optuna.journal"
    path.parent.mkdir()
    write_elsewhere(path, "old", 1.0)
    first = make_storage(None, tmp_path)
    assert values(first, "old") == [1.0]
    path.unlink()  # `rm -rf .metaexp` between two runs of this process
    write_elsewhere(path, "new", 5.0)
    fresh = make_storage(None, tmp_path)
    assert fresh is not first
    assert values(fresh, "new") == [5.0]
    assert [s.study_name for s in fresh.get_all_studies()] == ["new"]


def test_a_truncated_journal_is_replayed_afresh(tmp_path: Path) -> None:
    path = tmp_path / ".metaexp" / "optuna.journal"
    path.parent.mkdir()
    write_elsewhere(path, "a", 1.0)
    write_elsewhere(path, "a", 2.0)
    first = make_storage(None, tmp_path)
    assert values(first, "a") == [1.0, 2.0]
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2]))  # the first trial only, in the same inode
    fresh = make_storage(None, tmp_path)
    assert fresh is not first
    assert values(fresh, "a") == [1.0]  # what the file holds now
