"""Every benchmark still runs: each script's --smoke mode (tiny sizes, seconds), as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys

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
    "search_quality.py": "operator surrogate",
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
    assert FIGURES[name] in proc.stdout, proc.stdout[-3000:]
