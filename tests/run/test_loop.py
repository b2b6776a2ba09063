"""The loop end to end, as a user runs it: init, validate, run, status, show, report, resume."""

from __future__ import annotations

import itertools
from pathlib import Path

from conftest import Project, git

from metaexp.record.records import Status


def test_cli_end_to_end_from_an_example(tmp_path: Path) -> None:
    demo = Project(tmp_path / "demo")
    Project(tmp_path).cli("init", "--example", "landscape", str(demo.root))
    assert (demo.root / "search_spaces" / "landscape.yaml").exists()
    out = demo.cli("validate", "metaexp.yaml").stdout
    assert "ok" in out and "params.py" in out
    run = demo.cli("run", "metaexp.yaml")
    assert "max_experiments=40 reached" in run.stderr
    records = demo.assert_consistent()
    assert len(records) == 40
    assert records[0].description == "baseline" and records[0].status is Status.KEEP
    best = min(r.value for r in records if r.status.accepted)
    assert best < records[0].value  # the loop improved on the baseline
    status = demo.cli("status", "metaexp.yaml").stdout
    assert f"best loss = {best:.6g}" in status
    kept = next(r for r in records[1:] if r.status is Status.KEEP)
    show = demo.cli("show", "metaexp.yaml", str(kept.n)).stdout
    assert kept.description in show and "--- diff against parent" in show and "loss:" in show
    report = demo.cli("report", "metaexp.yaml").stdout
    png = demo.root / ".metaexp" / "landscape" / "progress.png"
    assert "kept changes" in report and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_kept_try_advances_the_branch_and_every_try_is_a_commit(project: Project) -> None:
    result = project.run()
    assert result.stop_reason == "max_experiments=8 reached"
    records = project.assert_consistent()
    for rec in records[1:]:
        assert git(project.root, "rev-parse", f"{rec.commit}^").strip() == rec.parent
        changed = git(project.root, "diff", "--name-only", rec.parent, rec.commit).split()
        assert changed == ["params.py"]
    best = [r for r in records if r.best][-1]
    assert git(project.root, "rev-parse", "refs/metaexp/landscape/best").strip() == best.commit
    worktree = project.root / ".metaexp" / "landscape" / "worktree" / "params.py"
    assert worktree.read_text() == git(project.root, "show", "autoexp/landscape:params.py")


def test_resume_continues_numbering_without_repeating(project: Project) -> None:
    project.run(budget={"max_experiments": 5})
    first = project.records()
    project.run(budget={"max_experiments": 9})
    records = project.assert_consistent()
    assert len(records) == 9 and records[:5] == first


def test_users_checkout_and_uncommitted_changes_survive(project: Project) -> None:
    project.write("params.py", "X = 99.0  # my uncommitted edit\nY = 0.0\nWIDTH = 3\n", commit=False)
    project.write("notes.txt", "untracked notes\n", commit=False)
    head = git(project.root, "rev-parse", "HEAD")
    branch = git(project.root, "branch", "--show-current")
    project.run()
    assert (project.root / "params.py").read_text().startswith("X = 99.0  # my uncommitted edit")
    assert (project.root / "notes.txt").read_text() == "untracked notes\n"
    assert git(project.root, "rev-parse", "HEAD") == head
    assert git(project.root, "branch", "--show-current") == branch
    status = git(project.root, "status", "--porcelain")
    assert set(status.splitlines()) == {" M params.py", "?? notes.txt", "?? metaexp.yaml"}  # no .metaexp/
    assert project.records()[0].params == {"X": 3.0, "Y": -2.0, "WIDTH": 7}  # ran the committed start


def test_second_run_with_the_same_tag_is_refused(project: Project) -> None:
    import fcntl

    project.spec()
    out = project.root / ".metaexp" / "landscape"
    out.mkdir(parents=True)
    with (out / "lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write("4242")
        fh.flush()
        proc = project.cli("run", "metaexp.yaml", check=False)
    assert proc.returncode == 1
    assert "another metaexp run with tag 'landscape' is running (pid 4242)" in proc.stderr


def test_target_value_stops_the_run(project: Project) -> None:
    result = project.run(budget={"max_experiments": 50, "target": 100.0})
    assert result.stop_reason == "target 100 reached"
    assert len(project.records()) == 1


def test_explore_every_accepts_worse_changes(project: Project) -> None:
    project.run(strategy={"explore_every": 2}, budget={"max_experiments": 12})
    records = project.assert_consistent()
    explored = [r for r in records if r.status is Status.EXPLORE]
    assert explored and all(r.n % 2 == 0 for r in explored)
    for rec in explored:  # the lineage moved on: the next try's parent is the explored commit
        following = next((r for r in records if r.n > rec.n and r.commit), None)
        if following:
            assert following.parent == rec.commit


def test_tsv_has_a_column_per_metric(project: Project) -> None:
    project.run(
        metrics={
            "loss": {"direction": "minimize"},
            "exp": {"direction": "minimize", "pattern": r"experiment:\s*(\S+)"},
        }
    )
    header, first = (project.root / ".metaexp/landscape/results.tsv").read_text().splitlines()[:2]
    assert header.split("\t") == ["commit", "loss", "exp", "status", "description"]
    assert first.split("\t")[1:] == ["7.000000", "1.000000", "keep", "baseline"]


def test_explore_rate_one_accepts_every_change(project: Project) -> None:
    project.run(strategy={"explore_rate": 1.0}, budget={"max_experiments": 8})
    records = project.assert_consistent()
    assert {r.status for r in records[1:]} <= {Status.KEEP, Status.EXPLORE}
    assert any(r.status is Status.EXPLORE for r in records)
    assert all(r.parent == prev.commit for prev, r in itertools.pairwise(records))


def test_wall_clock_budget_counts_across_resumes(project: Project) -> None:
    project.run(budget={"max_experiments": 3})
    spent = sum(r.wall_time_s for r in project.records())
    result = project.run(budget={"max_experiments": 50, "max_wall_clock_h": 0.99 * spent / 3600})
    assert result.stop_reason.startswith("max_wall_clock_h=")
    assert len(project.records()) == 3
