"""Noisy harnesses: paired seeds, SPRT or fixed batches, the incumbent evaluated once per seed."""

from __future__ import annotations

import statistics
from collections import defaultdict

import pytest
from conftest import Project
from helpers import NOISY, NOISY_HARNESS

from metaexp.record.records import Status
from metaexp.record.storage import open_study


def _incumbent_seeds_once(records: list) -> None:
    seen: dict[str, set[int]] = defaultdict(set)
    for rec in records:
        for run in rec.extra.get("incumbent_runs", []):
            assert run["seed"] not in seen[run["commit"]], "the incumbent ran twice on one seed"
            seen[run["commit"]].add(run["seed"])


def test_sprt_runs_paired_seeds_and_stops_early(project: Project) -> None:
    project.write("noisy.py", NOISY)
    noise = {"method": "sprt", "sprt": {"delta": 0.3, "min_runs": 3, "max_runs": 8}}
    project.run(harness=NOISY_HARNESS, noise=noise, budget={"max_experiments": 6})
    records = project.assert_consistent()
    evaluated = [r for r in records[1:] if r.status.harness_ran]
    assert evaluated
    for rec in evaluated:
        runs = rec.extra["runs"]
        assert 1 <= len(runs) <= 8
        seeds = [r["seed"] for r in runs]
        incumbent = {r["seed"] for r in rec.extra["incumbent_runs"]}
        assert incumbent <= set(seeds)  # paired: the incumbent ran on the candidate's seeds
        assert rec.value == pytest.approx(sum(r["metrics"]["loss"] for r in runs) / len(runs))
        assert "n=" in rec.reason or rec.status is Status.KEEP
        if rec.status is Status.KEEP:
            assert rec.extra["noise"]["mean_gain"] > 0
    assert any(len(r.extra["runs"]) < 8 for r in evaluated)  # some decided before max_runs
    rows = (project.root / ".metaexp" / "landscape" / "results.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:4] == ["commit", "loss", "runs", "std:loss"]
    trials = {
        t.user_attrs["experiment"]: t for t in open_study(None, project.root, "landscape", "minimize").trials
    }
    for rec in evaluated:
        cells = rows[rec.n].split("\t")
        losses = [r["metrics"]["loss"] for r in rec.extra["runs"]]
        assert int(cells[2]) == len(losses) == trials[rec.n].user_attrs["runs"]
        if len(losses) > 1:
            assert float(cells[3]) == pytest.approx(statistics.stdev(losses), abs=1e-6)
            assert trials[rec.n].user_attrs["noise:n"] == rec.extra["noise"]["n"]
    _incumbent_seeds_once(records)

    project.run(harness=NOISY_HARNESS, noise=noise, budget={"max_experiments": 9})  # resume: cache rebuilt
    _incumbent_seeds_once(project.assert_consistent())


def test_batched_runs_k_times_and_keeps_only_clear_gains(project: Project) -> None:
    project.write("noisy.py", NOISY)
    project.run(
        harness=NOISY_HARNESS, noise={"method": "batched", "repeats": 3}, budget={"max_experiments": 5}
    )
    records = project.assert_consistent()
    for rec in records[1:]:
        if rec.status.harness_ran and not rec.status.failed:
            assert len(rec.extra["runs"]) == 3
            if rec.status is Status.KEEP:
                assert rec.extra["noise"]["mean_gain"] > rec.extra["noise"]["std_gain"]


LUCKY = NOISY.replace(
    "print('loss:', true + noise)\n",
    "seed = int(os.environ['METAEXP_SEED'])\n"
    "lucky = 6.0 if seed < 10**9 and vals['WIDTH'] < 7 else 0.0  # a gain only the first seeds show\n"
    "print('loss:', true + noise - lucky)\n",
)


def test_reevaluated_elites_that_do_not_hold_up_are_dropped(project: Project) -> None:
    project.write("noisy.py", LUCKY)
    noise = {
        "method": "sprt",
        "reevaluate_elites": True,
        "sprt": {"delta": 0.3, "min_runs": 3, "max_runs": 8},
    }
    project.run(harness=NOISY_HARNESS, noise=noise, budget={"max_experiments": 12})
    records = project.assert_consistent()
    confirmed = [r for r in records if "confirmed" in r.extra]
    assert confirmed
    for rec in confirmed:
        fresh = [run for run in rec.extra["runs"] if run.get("confirm")]
        assert fresh and all(run["seed"] >= 10**9 for run in fresh)
        assert all(run["seed"] < 10**9 for run in rec.extra["runs"] if not run.get("confirm"))
        assert (rec.status is Status.KEEP) == rec.extra["confirmed"]
        if not rec.extra["confirmed"]:
            assert "but not on fresh seeds" in rec.reason
    dropped = [r for r in confirmed if not r.extra["confirmed"]]
    assert dropped and all(r.params["WIDTH"] < 7 for r in dropped)
    kept = [r for r in records[1:] if r.status is Status.KEEP]
    assert all(r.extra.get("confirmed") is True for r in kept)
    _incumbent_seeds_once(records)


def test_reevaluate_elites_needs_repeats(project: Project) -> None:
    from metaexp.errors import SpecError
    from metaexp.spec import load_spec

    with pytest.raises(SpecError, match="needs method sprt or batched"):
        load_spec(project.spec(noise={"reevaluate_elites": True}))
