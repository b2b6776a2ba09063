"""What counts as new: exact and near duplicates are recorded with their twin's value, never run."""

from __future__ import annotations

import pytest
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


@pytest.mark.parametrize("sampler", ["cmaes", "lq-cmaes"])
def test_a_restart_leaves_its_optimum_for_a_fresh_point_and_never_the_baseline(
    project: Project, sampler: str
) -> None:
    """escape random_restart with params + cmaes (or lq-cmaes): each restart starts a new search at a
    random point (IPOP: a larger population), far from the best it leaves, never back at the start."""
    from metaexp.spec.space import load_space

    project.run(
        operator={"kind": "params", "space": "space.yaml", "sampler": sampler},
        strategy={"escape": {"patience": 6, "action": "random_restart", "converged": 1.0}},
        budget={"max_experiments": 40},
    )
    records = project.assert_consistent()
    restarts = [r for r in records if r.extra.get("restart")]
    assert len(restarts) >= 2, [r.status for r in records]
    space = load_space(project.root / "space.yaml")

    def unit(params: dict) -> list[float]:
        return [space[n].to_unit(params[n]) for n in sorted(space)]

    baseline = unit(records[0].params)
    centres = [unit(r.extra["x0"]) for r in restarts]
    assert baseline not in centres and len({tuple(c) for c in centres}) == len(centres)
    for rec in restarts:  # the first child of a restart is far from the incumbent it leaves
        left = [r for r in records[: rec.n - 1] if r.status.accepted][-1]
        gap = sum((a - b) ** 2 for a, b in zip(unit(rec.params), unit(left.params), strict=True)) ** 0.5
        steps = [
            sum((a - b) ** 2 for a, b in zip(unit(r.params), unit(left.params), strict=True)) ** 0.5
            for r in records[max(1, rec.n - 7) : rec.n - 1]
            if r.status.harness_ran and r.parent == left.commit
        ]
        assert gap > 0.05 and rec.status.name == "ESCAPE", (rec.n, rec.reason, rec.params, left.params, steps)


def test_a_cmaes_search_still_converging_is_not_restarted(project: Project) -> None:
    """escape.converged (default 0.01): CMA-ES that has not closed in yet is not cut short by the
    patience, however long it has gone without improving (IPOP restarts converged searches)."""
    project.run(
        operator={"kind": "params", "space": "space.yaml", "sampler": "cmaes"},
        strategy={"escape": {"patience": 3, "action": "random_restart"}},
        budget={"max_experiments": 30},
    )
    records = project.assert_consistent()
    streak = longest = 0
    for rec in records[1:]:
        streak = 0 if rec.status.name == "KEEP" else streak + 1
        longest = max(longest, streak)
    assert longest >= 3 * 2  # the patience ran out, twice over
    assert not [r.n for r in records if r.extra.get("restart") or r.status.name == "ESCAPE"]
