"""Every benchmark still runs: each script's --smoke mode (tiny sizes, seconds), as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from conftest import ROOT

BENCHES = sorted(p.name for p in (ROOT / "bench").glob("*.py"))
FIGURES = {  # a line each smoke run must print: the figures, not just an exit code
    "cheap_evals.py": "x the Optuna script's wall time (target <= 3x)",
    "fault_soak.py": "wall time with faults / without",
    "hybrid.py": "| curve (≤ 0.1) | hybrid |",
    "llm_path.py": "evaluations spent on repeats or broken edits by the llm methods",
    "loop_overhead.py": "sum = full overhead",
    "meta_pruning.py": "successive_halving",
    "noise.py": "SPRT uses",
    "parallel_scaling.py": "of ideal",
    "parallel_study.py": "share of ideal",
    "ray_start.py": "first proposal recorded",
    "search_quality.py": ("operator surrogate", "| metaexp lq-cmaes | "),  # landscapes; crashes
}


def test_every_bench_has_a_smoke_check() -> None:
    assert set(BENCHES) == set(FIGURES)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", BENCHES)
def test_bench_smoke(name: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / name), "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = FIGURES[name]
    for line in (figures,) if isinstance(figures, str) else figures:
        assert line in proc.stdout, proc.stdout[-3000:]


def _search_quality() -> Any:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import search_quality
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return search_quality


def test_the_bbob_table_marks_a_row_only_where_the_seeds_separate_the_methods() -> None:
    """search_quality's (+) / (-): a two-sided Mann-Whitney U test of the seeds' bests, p < 0.05."""
    search_quality = _search_quality()
    low, high = [1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0]
    assert search_quality.against(low, high) == "+"
    assert search_quality.against(high, low) == "-"
    # medians apart but the seeds interleaved: no mark (exact p = 0.69)
    assert search_quality.against([1.0, 3.0, 5.0, 7.0, 9.0], [2.0, 4.0, 6.0, 8.0, 10.0]) == ""
    # separated, but 4 seeds against 4 reach p = 0.029 and 3 against 3 only p = 0.1
    assert search_quality.against(low[:4], high[:4]) == "+"
    assert search_quality.against(low[:3], high[:3]) == ""
    assert search_quality.against([2.0] * 5, [2.0] * 5) == ""
    rows = [
        {"fid": fid, "dim": 5, "seed": s, "method": m, "best": {100: v + s}}
        for fid in search_quality.FUNCTIONS
        for s in range(5)
        for m, v in (
            ("optuna cmaes", 10.0),
            ("metaexp cmaes", 0.0 if fid == 15 else 20.0 if fid == 20 else 10.0),
        )
    ]
    table = search_quality.bbob_table(rows, (100,), (5,), ("optuna cmaes", "metaexp cmaes"))
    assert "| f15 Rastrigin | 5 | 100 | 12 | 2 (+) |" in table
    assert "| f20 Schwefel | 5 | 100 | 12 | 22 (-) |" in table
    assert "| f22 Gallagher 21 | 5 | 100 | 12 | 12 |" in table
    assert "metaexp cmaes: <= CMA-ES alone 3/4, <= 0.8 x 1/4; significantly ahead 1/4, behind 1/4" in table
    assert "chance that" not in table  # 5 seeds: a draw of 5 of them is the table itself


def test_the_chance_of_meeting_every_row_with_five_seeds() -> None:
    """search_quality's chance_every_row, from 10 seeds a method: 1 for a method ahead on every seed
    of every row, 0 for one behind on every seed of one row, small for CMA-ES against itself."""
    search_quality = _search_quality()
    worse = next(iter(search_quality.FUNCTIONS))
    rows = [
        {"fid": fid, "dim": 5, "seed": s, "method": m, "best": {100: v + s, 300: v + s / 2}}
        for fid in search_quality.FUNCTIONS
        for s in range(10)
        for m, v in (
            ("optuna cmaes", 10.0),
            ("metaexp ahead", 0.0),
            ("metaexp behind once", 30.0 if fid == worse else 0.0),
        )
    ]
    chance = search_quality.chance_every_row
    assert chance(rows, (100, 300), (5,), "metaexp ahead", 1.0) == 1.0
    assert chance(rows, (100, 300), (5,), "metaexp behind once", 1.0) == 0.0
    itself = chance(rows, (100, 300), (5,), "optuna cmaes", 1.0)
    assert 0.0 < itself < 0.2  # two draws of one method's seeds, each of 4 functions a coin's toss or so
    table = search_quality.bbob_table(rows, (100, 300), (5,), ("optuna cmaes", "metaexp ahead"))
    assert f"CMA-ES alone against itself {itself:.4f}" in table
    assert "  metaexp ahead: <= CMA-ES alone 1.0000" in table


def test_the_crash_table_counts_a_seed_stuck_in_the_region_and_one_that_left_it() -> None:
    """search_quality's crashes part: a seed whose last 30 evaluations all crashed is stuck, one that
    crashed often but not at the end is not; reached is f < 0.05; the median best skips crashes; a
    run whose evaluations (probes included) fall short of its budget stopped early."""
    left = [None] * 40 + [0.01] + [None] * 27  # crashed 67 times, but not all of its last 30
    stuck = [0.2] * 10 + [None] * 60
    rows = [
        {
            "scenario": "close",
            "method": "metaexp lq-cmaes",
            "seed": 0,
            "values": left,
            "probes": 2,
            "evals": 70,
        },
        {
            "scenario": "close",
            "method": "metaexp lq-cmaes",
            "seed": 1,
            "values": stuck,
            "probes": 3,
            "evals": 80,
        },
    ]
    line = next(row for row in _search_quality().crash_table(rows).splitlines() if "lq-cmaes" in row)
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[2:] == ["1/2", "1/2", "0.105", f"{127 / 138:.0%}", "1/2", "5"], cells
    assert "70 evals" in cells[0]
