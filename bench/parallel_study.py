"""Wall time of a `metaexp study` run serially and W runs at once, against the ideal W-fold speed-up.

The study is 4 strategies (hill_climb, explore_exploit, islands, pbt) x 20 seeds x 60 evaluations
on the deceptive trap (harnesses/landscapes), run through the CLI as a user runs it, once per W in
a fresh copy of the project (Ray, where populations need it, starts in each). The harness sleeps
before it scores (--sleep, 0.1 s: sleeping costs no CPU), so on a 2-core machine the figure is
metaexp's parallelism (the driver, the workers, git, the ledgers), not the cores' arithmetic; it
runs on the warm harness server (harness.preload: a fork per evaluation, as cheap evaluations
should), or with --harness plain a Python process per evaluation (~80 ms of CPU each: at W = 4 the
runs then need both cores and slow each other).
Population runs ask for a quarter CPU and one evaluation at a time (ray.max_concurrent_evals: 1,
eval_resources: {num_cpus: 0.25}), so every run holds one slot and the ideal speed-up at W is W.
Each W's study.json must equal the serial one (the figures do not depend on W).

    python bench/parallel_study.py [--slots 2,4] [--seeds 20] [--budget 60] [--sleep 0.1] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
STRATEGIES = ("hill_climb", "explore_exploit", "islands", "pbt")
SLEEPY = """# sleeps, then scores the trap: the evaluation waits without using a CPU
import runpy
import sys
import time

time.sleep(float(sys.argv[1]))
sys.argv = ["evaluate.py", "deceptive"]
runpy.run_path("evaluate.py", run_name="__main__")
"""
PRELOAD = ["hashlib", "importlib.util", "itertools", "math"]  # what evaluate.py imports


def make_project(dest: Path, sleep: float, warm: bool) -> Path:
    shutil.copytree(ROOT / "harnesses" / "landscapes", dest, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "search_spaces", dest / "search_spaces")
    (dest / "sleepy.py").write_text(SLEEPY)
    spec = yaml.safe_load((dest / "deceptive.yaml").read_text())
    spec["harness"].update(command=f"python sleepy.py {sleep}", immutable=["evaluate.py", "sleepy.py"])
    if warm:
        spec["harness"]["preload"] = PRELOAD
    spec["ray"] = {"max_concurrent_evals": 1, "eval_resources": {"num_cpus": 0.25}}
    (dest / "bench.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "start"],
    ):
        subprocess.run(["git", *args], cwd=dest, check=True)
    return dest


def study(
    project: Path, strategies: list[str], seeds: int, budget: int, slots: int
) -> tuple[float, dict, dict[str, list[float]]]:
    """The study's wall time through the CLI, its study.json, and each run's own seconds by strategy."""
    argv = [sys.executable, "-m", "metaexp", "study", "bench.yaml", "--strategies", *strategies]
    argv += ["--seeds", str(seeds), "--budget", str(budget), "--parallel", str(slots), "--out", "out"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.monotonic()
    proc = subprocess.run(
        argv, cwd=project, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL
    )
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"metaexp study --parallel {slots} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    runs: dict[str, list[float]] = {}
    for strategy, seconds in re.findall(r"^\[\d+/\d+\] \S+-(\w+)-s\d+: .*\(([0-9.]+)s\)$", proc.stderr, re.M):
        runs.setdefault(strategy, []).append(float(seconds))
    return wall, json.loads((project / "out" / "study.json").read_text()), runs


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slots", default="2,4", help="the W to compare with the serial study")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--sleep", type=float, default=0.1, help="seconds each evaluation sleeps")
    parser.add_argument(
        "--harness",
        choices=["warm", "plain"],
        default="warm",
        help="warm: harness.preload (a fork per evaluation); plain: a Python process per evaluation",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="2 single-lineage strategies, 2 seeds, 4 evaluations"
    )
    parser.add_argument("--keep", metavar="DIR", help="make the projects under DIR and keep their ledgers")
    args = parser.parse_args()
    if args.smoke:
        args.slots, args.strategies, args.seeds, args.budget, args.sleep = "2", STRATEGIES[:2], 2, 4, 0.0
    rows = []
    with contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory() as tmp:
        for slots in [1, *(int(s) for s in args.slots.split(","))]:
            print(f"W={slots} ...", file=sys.stderr, flush=True)
            project = make_project(Path(tmp) / f"w{slots}", args.sleep, args.harness == "warm")
            rows.append((slots, *study(project, list(args.strategies), args.seeds, args.budget, slots)))
    serial_wall, serial_report = rows[0][1], rows[0][2]
    runs = len(serial_report["runs"])
    evaluations = sum(run["evaluations"] for run in serial_report["runs"])
    print(
        f"study: {', '.join(args.strategies)} x {args.seeds} seeds x budget {args.budget} ({runs} runs, "
        f"{evaluations} evaluations), harness sleeps {args.sleep:g} s ({args.harness}); load average "
        f"at the end "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"{'W':>3}  {'wall s':>8}  {'speed-up':>8}  {'ideal':>5}  {'share of ideal':>14}"
        f"  {'run s (mean)':>12}  {'slots busy':>10}  {'same figures':>12}"
    )
    for slots, wall, report, by_strategy in rows:
        speedup = serial_wall / wall
        same = "yes" if report == serial_report else "NO"
        runs = [s for seconds in by_strategy.values() for s in seconds]
        mean = statistics.fmean(runs) if runs else float("nan")
        busy = sum(runs) / (slots * wall)
        print(
            f"{slots:>3}  {wall:>8.1f}  {speedup:>8.2f}  {slots:>5}  {speedup / slots:>14.1%}"
            f"  {mean:>12.2f}  {busy:>10.1%}  {same:>12}"
        )
    print(
        "speed-up: serial wall time / wall time at W; ideal: W (every run holds one slot). "
        "Target: >= 85% at W = 4. run s: a run's own seconds (longer at W > 1: the runs share the "
        "CPUs); slots busy: the runs' seconds / (W x wall time) (the rest: starting, the tail, "
        "the outputs)."
    )
    print(f"\n{'run s (mean) by strategy':<26}" + "".join(f"{f'W = {slots}':>10}" for slots, *_ in rows))
    for strategy in args.strategies:
        means = [statistics.fmean(r[3].get(strategy) or [float("nan")]) for r in rows]
        print(f"{strategy:<26}" + "".join(f"{m:>10.2f}" for m in means))
    return 0 if all(report == serial_report for _, _, report, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
