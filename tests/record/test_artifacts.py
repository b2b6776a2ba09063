"""Each try's diff, log tail and changed target files as Optuna artifacts of its trial, and the
parent's trial number: real runs through `metaexp run` on a real git repository and journal."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, git

from metaexp.record.artifacts import ATTR_PREFIX, changed_blobs, unified_diff
from metaexp.record.git import Git
from metaexp.record.records import ExperimentRecord
from metaexp.record.storage import open_study

pytestmark = pytest.mark.timeout(240)


def store_dir(project: Project) -> Path:
    return project.root / ".metaexp" / "artifacts"


def trials(project: Project) -> list[Any]:
    return open_study(None, project.root, "landscape", "minimize").get_trials()


def artifacts(project: Project) -> dict[int, dict[str, bytes]]:
    """Experiment -> {filename: content}, through Optuna's artifact API and the filesystem store."""
    from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta

    study = open_study(None, project.root, "landscape", "minimize")
    store = FileSystemArtifactStore(store_dir(project))
    found = {}
    for t in study.get_trials():
        metas = get_all_artifact_meta(t, storage=study._storage)
        assert len({m.filename for m in metas}) == len(metas), metas  # one of each per try
        found[t.user_attrs["experiment"]] = {
            m.filename: store.open_reader(m.artifact_id).read() for m in metas
        }
    return found


def referenced(project: Project) -> list[str]:
    """Every artifact id the study's trials name (duplicates kept)."""
    return [
        key.removeprefix(ATTR_PREFIX)
        for t in trials(project)
        for key in t.system_attrs
        if key.startswith(ATTR_PREFIX)
    ]


def stored(project: Project) -> dict[str, int]:
    """The files in the store: id -> mtime_ns."""
    return {p.name: p.stat().st_mtime_ns for p in store_dir(project).iterdir()}


def changed_lines(diff: str) -> list[str]:
    return [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_every_try_has_its_diff_log_and_changed_files_and_its_parents_trial(project: Project) -> None:
    project.spec(budget={"max_experiments": 8})
    project.cli("run", "metaexp.yaml")
    records = project.assert_consistent()
    found = artifacts(project)
    assert sorted(found) == [r.n for r in records]
    logs = project.root / ".metaexp" / "landscape" / "logs"
    for rec in records:
        files = found[rec.n]
        assert ("log.txt" in files) == rec.status.harness_ran, (rec.n, rec.status, sorted(files))
        if rec.status.harness_ran:
            assert files["log.txt"] == (logs / f"{rec.n}.log").read_bytes()  # a short log: all of it
        if rec.n == 1:
            assert set(files) == {"log.txt"}  # the baseline changes nothing
            continue
        assert rec.commit and rec.parent
        expected = git(project.root, "diff", rec.parent, rec.commit)
        diff = files["diff.patch"].decode()
        assert diff.startswith("diff --git a/params.py b/params.py\n--- a/params.py\n+++ b/params.py\n")
        assert changed_lines(diff) == changed_lines(expected) != []
        assert files["params.py"].decode() == git(project.root, "show", f"{rec.commit}:params.py")
    by_n = {t.user_attrs["experiment"]: t for t in trials(project)}
    number_of = {t.user_attrs["commit"]: t.number for t in by_n.values()}
    assert "parent_trial" not in by_n[1].user_attrs and "diff" not in by_n[1].user_attrs
    for rec in records[1:]:
        attrs = by_n[rec.n].user_attrs
        assert attrs["parent_trial"] == number_of[rec.parent]
        parent = next(t for t in by_n.values() if t.number == attrs["parent_trial"])
        assert parent.user_attrs["commit"] == rec.parent and parent.user_attrs["experiment"] < rec.n
        git_diff = git(project.root, "diff", rec.parent or "", rec.commit or "")
        assert all(line in attrs["diff"] for line in changed_lines(git_diff))  # the excerpt the page shows
    kept = [r for r in records[1:] if r.status.accepted]
    assert (
        kept and by_n[kept[0].n].user_attrs["parent_trial"] == by_n[1].number
    )  # the first keep: from the baseline


def test_a_resume_uploads_nothing_twice(project: Project) -> None:
    project.spec(budget={"max_experiments": 4})
    project.cli("run", "metaexp.yaml")
    before = stored(project)
    assert sorted(before) == sorted(referenced(project)) and before
    project.cli("run", "metaexp.yaml")  # nothing left to do: the repair finds every trial
    assert stored(project) == before
    project.spec(budget={"max_experiments": 7})
    project.cli("run", "metaexp.yaml")
    after = stored(project)
    assert {k: after[k] for k in before} == before  # not one of the first four tries' files rewritten
    names = referenced(project)
    assert len(names) == len(set(names)) and sorted(names) == sorted(after)  # no orphan, none missing
    assert sorted(artifacts(project)) == list(range(1, 8))


@pytest.mark.parametrize("point", ["after-jsonl", "after-artifacts", "after-optuna"])
def test_a_kill_while_recording_loses_no_artifact_and_doubles_none(project: Project, point: str) -> None:
    project.spec(budget={"max_experiments": 5})
    killed = project.cli("run", "metaexp.yaml", env={"METAEXP_CRASHPOINT": f"{point}:3"}, check=False)
    assert killed.returncode == -signal.SIGKILL
    orphans = set(stored(project)) - set(referenced(project))
    if point == "after-artifacts":
        assert orphans  # #3's files are in the store, its trial is not: the repair must not add more
    else:
        assert not orphans
    project.cli("run", "metaexp.yaml")
    records: list[ExperimentRecord] = project.assert_consistent()
    names = referenced(project)
    assert len(names) == len(set(names)) and sorted(names) == sorted(stored(project))
    found = artifacts(project)
    assert sorted(found) == [r.n for r in records] == [1, 2, 3, 4, 5]
    rec = records[2]
    assert changed_lines(found[3]["diff.patch"].decode()) == changed_lines(
        git(project.root, "diff", rec.parent or "", rec.commit or "")
    )


def test_store_none_keeps_no_artifacts_but_the_parents_trial(project: Project) -> None:
    project.spec(budget={"max_experiments": 3}, artifacts={"store": "none"})
    project.cli("run", "metaexp.yaml")
    assert not store_dir(project).exists()
    assert referenced(project) == []
    told = trials(project)
    assert len(told) == 3 and all(isinstance(t.user_attrs.get("parent_trial"), int) for t in told[1:])
    assert all("diff" not in t.user_attrs for t in told)


def test_a_cloud_store_without_its_package_or_bucket_is_one_line_naming_the_key(project: Project) -> None:
    project.spec(artifacts={"store": "gcs"})
    proc = project.cli("run", "metaexp.yaml", check=False)
    assert proc.returncode == 1 and "artifacts" in proc.stderr and "needs bucket" in proc.stderr
    try:
        import google.cloud.storage  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("google-cloud-storage is installed here: the missing-package message cannot show")
    project.spec(artifacts={"store": "gcs", "bucket": "runs"})
    proc = project.cli("run", "metaexp.yaml", check=False)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].endswith("artifacts.store: gcs needs google-cloud-storage: pip install 'metaexp[gcs]'")
    assert "Traceback" not in proc.stderr


def test_changed_blobs_walks_only_what_differs_and_the_diff_reads_as_gits(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "sub" / "deep" / "a.py").write_text("A = 1\nB = 2\n")
    (root / "sub" / "same.py").write_text("same\n")
    (root / "gone.txt").write_text("bye\n")
    git(tmp_path, "init", "-q", str(root))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "one")
    (root / "sub" / "deep" / "a.py").write_text("A = 1\nB = 3\n")
    (root / "gone.txt").unlink()
    (root / "sub" / "new.py").write_text("NEW = True\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "two")
    one, two = (git(root, "rev-parse", rev).strip() for rev in ("HEAD~1", "HEAD"))
    repo = Git(root)
    try:
        loose = changed_blobs(repo, one, two)  # read from the object files
        git(root, "gc", "-q", "--prune=now")  # packed now: read through git cat-file --batch
        assert not list((root / ".git" / "objects").glob("??/*"))
        changed = changed_blobs(repo, one, two)
        assert changed == loose
        assert sorted(changed) == sorted(git(root, "diff", "--name-only", one, two).split())
        assert changed["gone.txt"][1] is None and changed["sub/new.py"][0] is None
        shas = [sha for pair in changed.values() for sha in pair if sha]
        blobs = dict(zip(shas, (found[1] for found in repo.objects(shas) if found), strict=True))
        diff = unified_diff({p: (blobs.get(a or ""), blobs.get(b or "")) for p, (a, b) in changed.items()})
        assert repo.objects(["0" * 40]) == [None]  # a missing object, and the reader still answers
        assert repo.objects([one])[0][0] == "commit"  # type: ignore[index]
    finally:
        repo.close()
    assert changed_lines(diff) == changed_lines(git(root, "diff", one, two))
    assert "--- a/gone.txt\n+++ /dev/null\n" in diff and "--- /dev/null\n+++ b/sub/new.py\n" in diff


def test_a_population_links_each_try_to_its_parents_trial_across_migrants(
    project: Project, ray_session: None
) -> None:
    from helpers import RAY, check_population, run_population

    from metaexp.record.records import Status
    from metaexp.report.lineage_plot import lineage_of_best

    run_population(project, ray={**RAY, "schedule": "ordered"}, budget={"max_experiments": 16})
    records = check_population(project)
    by_n = {t.user_attrs["experiment"]: t for t in trials(project)}
    tries = [r for r in records if r.status is not Status.MIGRATE]
    assert sorted(by_n) == [r.n for r in tries] and sorted(artifacts(project)) == [r.n for r in tries]
    first = {}  # commit -> the try that made it (a migrant copies one)
    for rec in tries:
        if rec.commit:
            first.setdefault(rec.commit, rec)
    for rec in tries[1:]:
        assert by_n[rec.n].user_attrs["parent_trial"] == by_n[first[rec.parent].n].number
    crossed = [r for r in tries[1:] if first[r.parent].island != r.island]
    assert crossed, "no try descends from a migrant: the test needs one"
    chain = lineage_of_best(records, "minimize").chain
    numbers = [by_n[r.n].number for r in chain]
    assert chain[0].n == 1
    for parent, child in zip(numbers[:-1], chain[1:], strict=True):  # the picture's chain, trial by trial
        assert by_n[child.n].user_attrs["parent_trial"] == parent
