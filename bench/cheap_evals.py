"""Cheap evaluations at full speed: a numpy objective through Optuna in-process, metaexp with a
plain harness, and metaexp with the warm harness server (harness.preload), side by side.

    python bench/cheap_evals.py [--evals 200] [--repeats 1]
    python bench/cheap_evals.py --smoke        # seconds: 10 evaluations

The objective is BBOB's Rastrigin (f15, d = 5, instance 1) from coco-experiment, minus its optimum.
Optuna: `CmaEsSampler(seed=0)` on the five coordinates in [-5, 5], `study.optimize` in a script of
its own (`python -c`), timed whole as metaexp is, and its optimize loop alone (after the imports).
metaexp: a fresh git repository whose harness (`python evaluate.py`) imports numpy and cocoex, reads
params.py's five constants and prints f; `operator: params, sampler: cmaes, style: global` (the
same sampler through the loop), the default sandbox (bubblewrap where it works), the journal
storage; once as is, once with `harness.preload: [numpy, cocoex]`. Each metaexp run is a `metaexp
run` subprocess, timed whole (Python's start, imports and the sandbox included).

Figures: each whole process's wall time and its ratio to the Optuna script's (target with the
server: <= 3x; 13-27x before it), the loops alone, and per evaluation Optuna's mean trial against
the median of experiments.jsonl's wall_time_s (what one experiment costs end to end) and of
harness_s (the harness alone).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 3.0
FUNCTION, DIM, INSTANCE = 15, 5, 1
OPTIONS = f"function_indices:{FUNCTION} dimensions:{DIM} instance_indices:{INSTANCE}"

HARNESS = f"""import re
import cocoex
import numpy as np

text = open("params.py").read()
x = np.array([float(v) for v in re.findall(r"^X\\d = (\\S+)", text, re.M)])
problem = next(iter(cocoex.Suite("bbob", "", "{OPTIONS}")))
print("f:", float(problem(x)) - {{fopt}})
"""


def optimum() -> float:
    """f at the problem's optimum (coco writes the optimal x to a file in the working directory)."""
    import cocoex
    import numpy as np

    problem, here = next(iter(cocoex.Suite("bbob", "", OPTIONS))), os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            problem._best_parameter("print")
            x = np.array([float(v) for v in Path("._bbob_problem_best_parameter.txt").read_text().split()])
        finally:
            os.chdir(here)
    return float(problem(x))


OPTUNA_SCRIPT = """import json, sys, time
import cocoex
import numpy as np
import optuna
import optuna.samplers._cmaes  # noqa: F401  CMA-ES's own imports (cmaes, scipy) before the clock starts
import cmaes  # noqa: F401

optuna.logging.set_verbosity(optuna.logging.WARNING)
evals, fopt, options = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
problem = next(iter(cocoex.Suite("bbob", "", options)))
dim = problem.dimension


def objective(trial):
    x = np.array([trial.suggest_float(f"X{i}", -5.0, 5.0) for i in range(dim)])
    return float(problem(x)) - fopt


t0 = time.perf_counter()
study = optuna.create_study(sampler=optuna.samplers.CmaEsSampler(seed=0))
study.optimize(objective, n_trials=evals)
print(json.dumps({"loop_s": time.perf_counter() - t0, "best": study.best_value}))
"""


def in_process(evals: int) -> dict[str, Any]:
    """Optuna's CMA-ES on the objective in one process, as a user's script runs: timed whole (Python's
    start and the imports included, like `metaexp run`) and its optimize loop alone."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", OPTUNA_SCRIPT, str(evals), repr(optimum()), OPTIONS],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"the Optuna script failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "method": "optuna in-process",
        "wall_s": wall,
        "loop_s": out["loop_s"],
        "best": out["best"],
        "experiment_ms": 1000 * out["loop_s"] / evals,
    }


def metaexp_run(evals: int, preload: bool, scratch: Path) -> dict[str, Any]:
    """One `metaexp run` in a fresh repository under `scratch`, which main() deletes only after the
    last run: a run started right after the previous one's few thousand files were deleted is slowed
    by it where the filesystem's inode allocator skips recently freed inodes (ext4 without a journal
    scans every inode freed in the last minute or more on each file it creates), which would make
    the figures depend on the order of the methods."""
    repo = Path(tempfile.mkdtemp(dir=scratch))
    (repo / "params.py").write_text("".join(f"X{i} = 0.0\n" for i in range(DIM)))
    (repo / "evaluate.py").write_text(HARNESS.replace("{fopt}", repr(optimum())))
    space = {f"X{i}": {"type": "float", "low": -5.0, "high": 5.0} for i in range(DIM)}
    (repo / "space.yaml").write_text(yaml.safe_dump(space))
    harness: dict[str, Any] = {
        "command": "python evaluate.py",
        "immutable": ["evaluate.py"],
        "timeout_s": 60,
    }
    if preload:
        harness["preload"] = ["numpy", "cocoex"]
    spec = {
        "tag": "cheap",
        "target": ["params.py"],
        "harness": harness,
        "metrics": {"f": {"direction": "minimize"}},
        "objective": {"primary": "f"},
        "operator": {"kind": "params", "space": "space.yaml", "sampler": "cmaes", "style": "global"},
        "strategy": "strategies/hill_climb.yaml",
        "budget": {"max_experiments": evals, "max_invalid_streak": None},
        "seed": 0,
    }
    (repo / "metaexp.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@b", "-c", "commit.gpgsign=false"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "start"]):
        subprocess.run([*git, *argv], cwd=repo, check=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "metaexp", "run", "metaexp.yaml"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"metaexp run failed:\n{proc.stderr[-2000:]}")
    rows = [json.loads(line) for line in (repo / ".metaexp/cheap/experiments.jsonl").read_text().splitlines()]
    ran = [r for r in rows if r["harness_s"] > 0]
    best = min(r["value"] for r in rows if r["value"] is not None)
    return {
        "method": "metaexp, warm server" if preload else "metaexp, plain harness",
        "wall_s": wall,
        "loop_s": sum(r["wall_time_s"] for r in rows),  # the first experiment's start to the last's end
        "best": best,
        "experiment_ms": 1000 * statistics.median(r["wall_time_s"] for r in ran),
        "harness_ms": 1000 * statistics.median(r["harness_s"] for r in ran),
        "evaluations": len(ran),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evals", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each method (the median is shown)")
    parser.add_argument("--smoke", action="store_true", help="10 evaluations: checks the bench runs")
    args = parser.parse_args()
    if args.smoke:
        args.evals, args.repeats = 10, 1
    results: dict[str, list[dict[str, Any]]] = {}
    scratch = Path(tempfile.mkdtemp(prefix="metaexp-cheap-"))
    try:
        for _ in range(args.repeats):  # alternated, so the machine's drift hits every method
            for method in ("in-process", "warm", "plain"):
                if method == "in-process":
                    row = in_process(args.evals)
                else:
                    row = metaexp_run(args.evals, method == "warm", scratch)
                results.setdefault(row["method"], []).append(row)
                print(f"  {row['method']}: {row['wall_s']:.2f}s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    optuna_rows = results["optuna in-process"]
    base = statistics.median(r["wall_s"] for r in optuna_rows)
    base_eval = statistics.median(r["experiment_ms"] for r in optuna_rows)
    load = os.getloadavg()[0]
    print(f"BBOB f{FUNCTION} d={DIM}, {args.evals} evaluations, {os.cpu_count()} CPUs, load {load:.2f}")
    head = [
        "method",
        "wall s (whole process)",
        "x optuna",
        "loop s",
        "best f - f_opt",
        "ms per evaluation (median)",
        "x optuna",
        "harness ms (median)",
    ]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for method, rows in results.items():
        wall = statistics.median(r["wall_s"] for r in rows)
        per_eval = statistics.median(r["experiment_ms"] for r in rows)
        harness = "-"
        if "harness_ms" in rows[0]:
            harness = f"{statistics.median(r['harness_ms'] for r in rows):.1f}"
        cells = [
            method,
            f"{wall:.2f}",
            f"{wall / base:.1f}",
            f"{statistics.median(r['loop_s'] for r in rows):.2f}",
            f"{statistics.median(r['best'] for r in rows):.4g}",
            f"{per_eval:.1f}",
            f"{per_eval / base_eval:.1f}",
            harness,
        ]
        lines.append(" | ".join(cells))
    print("\n".join(lines))
    warm = statistics.median(r["wall_s"] for r in results["metaexp, warm server"]) / base
    flag = "" if warm <= TARGET_RATIO else "   <-- over target"
    print(f"warm server: {warm:.1f}x the Optuna script's wall time (target <= {TARGET_RATIO:g}x){flag}")
    print(
        "wall s: each method as a user runs it, one whole process (Python's start and the imports "
        "included); loop s: Optuna's optimize() after its imports, metaexp's experiments from the "
        "first's start to the last's end (the sampler's import, ~0.6 s, falls in metaexp's second "
        "experiment); ms per evaluation: Optuna's loop / evaluations, metaexp's median experiment"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
