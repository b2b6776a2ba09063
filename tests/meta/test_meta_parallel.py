"""`metaexp meta --parallel`: outer trials and the re-evaluation's runs side by side as Ray tasks give
what one after another gives, population inner runs included (their lineages in hosts the tasks keep
from trial to trial)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from conftest import Project

from metaexp.meta.outer import plan_meta, run_meta
from metaexp.record.storage import open_study
from metaexp.spec import load_spec

pytestmark = pytest.mark.timeout(400)

SPACE = {
    "strategy.explore_rate": {"type": "float", "low": 0.0, "high": 0.3},
    "strategy.islands": {"type": "int", "low": 1, "high": 2},  # 2: a population on Ray
}
META = {"space": "strategy.yaml", "trials": 5, "sampler": "random", "pruner": "none"}
PICKS = {"reevaluate": 2, "reevaluate_seeds": 2}  # the best two trials again on two fresh seeds
RAY = {"max_concurrent_evals": 2, "eval_resources": {"num_cpus": 0.5}}


def study(project: Project, parallel: int) -> list[tuple[Any, ...]]:
    """Run the meta study; each outer trial with its inner run's records (no times, no commits)."""
    (project.root / "strategy.yaml").write_text(yaml.safe_dump(SPACE))
    path = project.spec(budget={"max_experiments": 5}, ray=RAY, meta={**META, **PICKS, "parallel": parallel})
    out = io.StringIO()
    result = run_meta(plan_meta(load_spec(path), path), out=out)
    assert result.trials == 5 and not result.interrupted, out.getvalue()
    outer = open_study(None, project.root, "landscape-meta", "minimize")
    rows: list[tuple[Any, ...]] = [("reevaluation", outer.user_attrs["reevaluation"])]
    trials = outer.get_trials()
    for t in trials:
        (tag,) = t.user_attrs["tags"]
        records = [(r.n, str(r.status), r.value, r.params, r.island) for r in project.records(tag)]
        rows.append((t.number, t.state.name, t.params, t.values, records))
    return rows


def test_parallel_outer_trials_give_what_serial_ones_give(
    make_project: Callable[[str], Project], ray_session: None
) -> None:
    serial = study(make_project("serial"), parallel=1)
    parallel = study(make_project("parallel"), parallel=3)
    assert parallel == serial
    (_, picks), *trials = serial
    assert all(state == "COMPLETE" for _, state, *_ in trials)
    assert {params["strategy.islands"] for _, _, params, *_ in trials} == {1, 2}  # both kinds of run
    assert len(picks["picks"]) == 2 and all(len(p["fresh"]) == 2 for p in picks["picks"])
