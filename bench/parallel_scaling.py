"""Experiments per hour of a population run against the ideal, at W evaluation slots.

The harness sleeps 1 s and prints a metric (sleeping costs no CPU, so the
evaluations ask for a fraction of a CPU and 8 fit on 2 cores). The ideal is
W x 3600 / T, with T the harness's own measured seconds; the figure says how
much of that the driver, the islands and the ledger let through, i.e. whether
they ever make an evaluation slot wait.

    python bench/parallel_scaling.py [--slots 1,2,4,8] [--per-slot 12] [--smoke]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HARNESS = """#!/bin/sh
# sleeps a second, then scores params.py: a quadratic bowl, optimum 0 at X=1.5, Y=-0.5
sleep 1
awk -F'=' '/^X =/{x=$2} /^Y =/{y=$2} END {printf "---\\nloss: %.6f\\n", (x-1.5)^2 + (y+0.5)^2}' params.py
"""
PARAMS = "X = 3.0  # first coordinate\nY = -2.0  # second coordinate\n"
SPACE = "X: {type: float, low: -5.0, high: 5.0}\nY: {type: float, low: -5.0, high: 5.0}\n"


def make_repo(root: Path, slots: int, per_slot: int) -> Path:
    root.mkdir(parents=True)
    (root / "params.py").write_text(PARAMS)
    (root / "evaluate.sh").write_text(HARNESS)
    (root / "space.yaml").write_text(SPACE)
    spec = {
        "tag": f"scale-{slots}",
        "target": ["params.py"],
        "harness": {"command": "sh evaluate.sh", "immutable": ["evaluate.sh"], "timeout_s": 30},
        "metrics": {"loss": {"direction": "minimize"}},
        "objective": {"primary": "loss"},
        "operator": {"kind": "perturb", "space": "space.yaml", "style": "conservative"},
        "strategy": {"islands": min(slots, 4), "population": 2},
        "ray": {"max_concurrent_evals": slots, "eval_resources": {"num_cpus": 0.2}},
        "budget": {
            "max_experiments": slots * per_slot + 1,
            "max_invalid_streak": None,
            "abort_on_consecutive_crashes": None,
            "max_wall_clock_h": None,
        },
    }
    (root / "metaexp.yaml").write_text(yaml.safe_dump(spec))
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "s"],
    ):
        subprocess.run(["git", *args], cwd=root, check=True)
    return root / "metaexp.yaml"


def measure(spec_path: Path, slots: int) -> dict[str, float]:
    """Run the population; time each record as the ledger writes it."""
    from metaexp.record import ledger as ledger_module
    from metaexp.run import run
    from metaexp.spec import load_spec

    stamps: list[tuple[float, object]] = []
    original = ledger_module.Ledger.record

    def timed(self, rec, moves=None):
        original(self, rec, moves)
        stamps.append((time.monotonic(), rec))

    ledger_module.Ledger.record = timed  # type: ignore[method-assign]
    try:
        run(load_spec(spec_path), out=io.StringIO())
    finally:
        ledger_module.Ledger.record = original  # type: ignore[method-assign]
    ran = [(t, r) for t, r in stamps if r.status.harness_ran and r.n > 1]
    harness = statistics.mean(r.harness_s for _, r in ran)
    return {
        "experiments": len(ran),
        "harness_s": harness,
        "per_hour": _rate(ran),
        "steady_per_hour": _rate(ran[slots:]),
        "invalid": sum(1 for _, r in stamps if not r.status.harness_ran),
    }


def _rate(stamped: list[tuple[float, object]]) -> float:
    """Experiments per hour between the first and the last of them being recorded."""
    span = stamped[-1][0] - stamped[0][0]
    return (len(stamped) - 1) / span * 3600 if span > 0 else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slots", default="1,2,4,8")
    parser.add_argument("--per-slot", type=int, default=20, help="evaluations per slot")
    parser.add_argument("--smoke", action="store_true", help="W = 1, 2; 2 evaluations each: that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.slots, args.per_slot = "1,2", 2
    import ray

    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for slots in (int(s) for s in args.slots.split(",")):
            print(f"W={slots} ...", file=sys.stderr)
            figures = measure(make_repo(Path(tmp) / f"w{slots}", slots, args.per_slot), slots)
            ideal = slots * 3600 / figures["harness_s"]
            rows.append((slots, figures, ideal))
    print(
        f"{'W':>3}  {'experiments':>11}  {'harness s':>9}  {'per hour':>9}  {'ideal':>9}  {'of ideal':>8}"
        f"  {'steady':>9}  {'of ideal':>8}"
    )
    for slots, f, ideal in rows:
        print(
            f"{slots:>3}  {f['experiments']:>11.0f}  {f['harness_s']:>9.3f}  {f['per_hour']:>9.0f}  "
            f"{ideal:>9.0f}  {f['per_hour'] / ideal:>8.1%}  {f['steady_per_hour']:>9.0f}  "
            f"{f['steady_per_hour'] / ideal:>8.1%}"
        )
    print(
        "per hour: evaluated experiments between the first and the last one recorded; steady: the same "
        "after the first wave of W (which waits for the islands to start); "
        "ideal: W x 3600 / mean harness seconds. Target: >= 95% at W = 8."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
