"""metaexp merge: the winners of runs that tuned different aspects compose into one branch."""

from __future__ import annotations

import json

from conftest import Project, git


def test_merge_combines_two_runs_and_checks_they_compose(project: Project) -> None:
    project.write("space_x.yaml", "X: {type: float, low: -5.0, high: 5.0}\n")
    project.write("space_w.yaml", "WIDTH: {type: int, low: 1, high: 32}\n")
    project.run(
        tag="tune-x", operator={"kind": "perturb", "space": "space_x.yaml"}, budget={"max_experiments": 12}
    )
    project.run(
        tag="tune-w", operator={"kind": "perturb", "space": "space_w.yaml"}, budget={"max_experiments": 12}
    )
    bests = {}
    for tag in ("tune-x", "tune-w"):
        records = project.records(tag)
        bests[tag] = min(r.value for r in records if r.status.accepted)
        assert bests[tag] < records[0].value  # each run improved its own aspect
    out = project.cli("merge", "metaexp.yaml", "--from", "tune-x", "tune-w", "--into", "both").stdout
    assert "the improvements compose" in out
    report = json.loads((project.root / ".metaexp/both/merge.json").read_text())
    assert report["value"] < min(bests.values()) and not report["conflicts"]
    merged = git(project.root, "show", "autoexp/both:params.py")
    x_best = git(project.root, "show", "refs/metaexp/tune-x/best:params.py").splitlines()[3]
    w_best = git(project.root, "show", "refs/metaexp/tune-w/best:params.py").splitlines()[5]
    assert x_best in merged and w_best in merged


def test_merge_without_sources_is_a_clear_error(project: Project) -> None:
    project.spec()
    proc = project.cli("merge", "metaexp.yaml", check=False)
    assert proc.returncode == 1 and "not a population run" in proc.stderr
    proc = project.cli("merge", "metaexp.yaml", "--from", "nope", check=False)
    assert proc.returncode == 1 and "--from nope: no recorded best" in proc.stderr
