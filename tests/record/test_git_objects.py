"""A try's objects are written by a thread of their own; nothing hands them to git before they exist."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from metaexp.record.git import Git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


def _blocked(git: Git, release: threading.Event) -> None:
    """Make the object writer wait for `release` before each file."""
    loose = git._loose
    store = loose._store

    def slow(path: Path, data: bytes) -> None:
        assert release.wait(30)
        store(path, data)

    loose._store = slow  # type: ignore[method-assign]


def test_git_commands_wait_for_the_objects_being_written(repo: Path) -> None:
    git, release = Git(repo), threading.Event()
    _blocked(git, release)
    tree = git.tree_with({}, {"a.py": b"A = 1\n"})
    commit = git.commit(tree, [], "try\n")
    loose = repo / ".git" / "objects" / commit[:2] / commit[2:]
    assert not loose.exists()  # the name is known before the file is written
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(git.run("cat-file", "-t", commit)))
    reader.start()
    reader.join(0.5)
    assert reader.is_alive() and not result  # git is not asked before the objects exist
    release.set()
    reader.join(30)
    assert result == ["commit\n"]
    assert loose.exists()
    assert git.objects([f"{commit}^{{tree}}"])[0] is not None
    git.update_refs({"refs/heads/t": commit})  # update-ref refuses a missing object: it waited
    assert git.resolve("refs/heads/t") == commit
    git.close()


def test_a_failed_object_write_is_raised_by_the_next_git_call(repo: Path) -> None:
    git = Git(repo)
    git.run("rev-parse", "--git-dir")

    def broken(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    git._loose._store = broken  # type: ignore[method-assign]
    git.write_object("blob", b"x")
    with pytest.raises(OSError, match="No space left"):
        git.flush_objects()
    git.close()


@pytest.mark.parametrize("lock", ["refs/heads/run.lock", "packed-refs.lock"])
def test_a_ref_another_git_holds_is_waited_for_not_a_failure(repo: Path, lock: str) -> None:
    """The user's `git commit` or `git gc` beside a run holds a ref's or packed-refs' lock for a
    moment: the run's ref update (a delete takes packed-refs' lock) waits for it, where git's
    defaults give up after 0.1 s and 1 s."""
    git = Git(repo)
    commit = git.commit(git.tree_with({}, {"a.py": b"A = 1\n"}), [], "try\n")
    git.update_refs({"refs/heads/old": commit})
    held = repo / ".git" / lock
    held.parent.mkdir(parents=True, exist_ok=True)
    held.write_text("")
    done = threading.Event()
    errors: list[BaseException] = []

    def update() -> None:
        try:
            git.update_refs({"refs/heads/run": commit, "refs/heads/old": None})
        except BaseException as exc:  # reported by the assertions below
            errors.append(exc)
        done.set()

    threading.Thread(target=update, daemon=True).start()
    assert not done.wait(1.5), errors  # still waiting, past git's own default timeouts
    held.unlink()  # the other git is done
    assert done.wait(20) and not errors, errors
    refs = git.run("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads").splitlines()
    assert refs == [f"refs/heads/run {commit}"]
    git.close()
