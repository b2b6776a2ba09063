"""What counts as new: exact and near duplicates are recorded with their twin's value, never run."""

from __future__ import annotations

from conftest import Project


def test_near_duplicates_are_skipped_before_they_cost_a_run(project: Project) -> None:
    """strategy.novelty: a point this close to an evaluated one is recorded with its twin's value."""
    project.run(
        operator={"kind": "perturb", "space": "space.yaml", "style": "conservative"},
        strategy={"novelty": 0.05},
        budget={"max_experiments": 12, "max_invalid_streak": 50},
    )
    records = project.assert_consistent()
    near = [r for r in records if r.reason.startswith("near-duplicate of #")]
    assert near, [r.reason for r in records]
    for rec in near:
        twin = records[rec.extra["twin"]["n"] - 1]
        assert rec.extra["twin"]["value"] == twin.value and rec.harness_s == 0
    from metaexp.spec.space import load_space

    space = load_space(project.root / "space.yaml")
    evaluated = [r for r in records if r.status.harness_ran]
    for i, a in enumerate(evaluated):  # no two evaluated points closer than the threshold
        for b in evaluated[:i]:
            squares = [(space[n].to_unit(a.params[n]) - space[n].to_unit(b.params[n])) ** 2 for n in space]
            assert (sum(squares) / len(squares)) ** 0.5 >= 0.05
