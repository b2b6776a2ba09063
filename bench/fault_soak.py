"""A fault soak: a population run with a lineage actor or an evaluation worker SIGKILLed every K
experiments, against the same run without faults.

    python bench/fault_soak.py [--experiments 200] [--every 20] [--seed 0] [--smoke]

Both runs are real `metaexp` population runs (2 islands of 2, migration, 2 evaluation slots, a
harness of 0.2 s) in fresh temporary repositories, driven in this process on a local Ray. In the
faulty one a thread watches the ledger and, every K records, kills (seeded choice) the process of
a lineage actor (found in Ray's actor table) or of a worker running an evaluation (the harness
writes its worker's PID into a folder while it runs). Figures: experiments lost (evaluated rows
short of the budget), duplicated (a lineage's proposal recorded twice, or a number twice),
crashes recorded, faults injected, and the wall time of each run with their ratio.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import yaml

HARNESS = """import os, sys, time
folder = os.environ['WORKERS']
supervisor = os.getppid()
worker = open(f'/proc/{supervisor}/stat').read().rsplit(')', 1)[1].split()[1]
mark = os.path.join(folder, worker)
open(mark, 'w').close()
time.sleep(0.2)
vals = {l.split('=')[0].strip(): float(l.split('=')[1]) for l in open('params.py') if '=' in l}
print('---')
print('loss:', (vals['X'] - 1.5) ** 2 + (vals['Y'] + 0.5) ** 2)
try:
    os.unlink(mark)
except FileNotFoundError:
    pass
"""
PARAMS = "X = 3.0\nY = -2.0\n"


def make_repo(root: Path, experiments: int, workers: Path) -> Path:
    root.mkdir(parents=True)
    (root / "params.py").write_text(PARAMS)
    (root / "evaluate.py").write_text(HARNESS)
    spec = {
        "tag": "soak",
        "target": ["params.py"],
        "harness": {
            "command": "python evaluate.py",
            "immutable": ["evaluate.py"],
            "env": {"WORKERS": str(workers)},
            "sandbox": "off",  # the soak's fault injection reads the harness's host PIDs
        },
        "metrics": {"loss": {"direction": "minimize"}},
        "objective": {"primary": "loss"},
        "operator": {"kind": "perturb", "style": {"conservative": 1, "bold": 1}},
        "strategy": {"islands": 2, "population": 2, "migration": {"every": 6, "count": 1}},
        "ray": {"max_concurrent_evals": 2, "eval_resources": {"num_cpus": 0.5}},
        "budget": {
            "max_experiments": experiments,
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


def _actor_pids(tag: str) -> list[int]:
    import ray._private.state as ray_state

    return [
        int(a["Pid"])
        for a in ray_state.state.actor_table(None).values()
        if str(a.get("Name", "")).startswith(f"metaexp:{tag}:island-")
        and a.get("State") == "ALIVE"
        and a.get("Pid")
    ]


class Chaos(threading.Thread):
    """Every `every` records, kill a lineage actor or an evaluation's worker (seeded choice)."""

    def __init__(self, jsonl: Path, workers: Path, every: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.jsonl, self.workers, self.every = jsonl, workers, every
        self.rng = random.Random(seed)
        self.kills: Counter[str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        next_at = self.every
        while not self.stop.wait(0.05):
            rows = self.jsonl.read_text().count("\n") if self.jsonl.exists() else 0
            if rows < next_at:
                continue
            kind = self.rng.choice(["actor", "worker"])
            pids = _actor_pids("soak") if kind == "actor" else [int(p.name) for p in self.workers.iterdir()]
            if not pids:
                continue  # nothing of that kind alive right now: try again on the next poll
            try:
                os.kill(self.rng.choice(sorted(pids)), signal.SIGKILL)
            except ProcessLookupError:
                continue
            self.kills[kind] += 1
            next_at += self.every


def soak(root: Path, experiments: int, every: int | None, seed: int) -> dict[str, object]:
    from metaexp.record.records import Status, read_records
    from metaexp.run import run
    from metaexp.spec import load_spec

    workers = root.parent / f"{root.name}-workers"
    workers.mkdir()
    spec = load_spec(make_repo(root, experiments, workers))
    jsonl = root / ".metaexp" / "soak" / "experiments.jsonl"
    chaos = Chaos(jsonl, workers, every, seed) if every else None
    t0 = time.monotonic()
    if chaos is not None:
        chaos.start()
    result = run(spec, out=io.StringIO())
    seconds = time.monotonic() - t0
    if chaos is not None:
        chaos.stop.set()
    records = read_records(jsonl)
    tried = Counter((r.island, r.generation) for r in records if r.n > 1 and r.status is not Status.MIGRATE)
    evaluated = sum(1 for r in records if r.status.harness_ran)
    return {
        "stop": result.stop_reason,
        "lost": experiments - evaluated,
        "duplicated": sum(c - 1 for c in tried.values()) + len(records) - len({r.n for r in records}),
        "crashes": sum(1 for r in records if r.status is Status.CRASH),
        "kills": dict(chaos.kills) if chaos is not None else {},
        "seconds": seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiments", type=int, default=200)
    parser.add_argument("--every", type=int, default=20, help="records between two faults")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="30 experiments, a fault every 10: that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.experiments, args.every = 30, 10
    import ray

    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False
    )
    with tempfile.TemporaryDirectory(prefix="fault-soak-") as tmp:
        calm = soak(Path(tmp) / "calm", args.experiments, None, args.seed)
        print(f"without faults: {calm}", file=sys.stderr)
        faulty = soak(Path(tmp) / "faulty", args.experiments, args.every, args.seed)
        print(f"with faults: {faulty}", file=sys.stderr)
    print(
        f"{'run':<16}{'stop':<32}{'lost':>6}{'duplicated':>12}{'crashes':>9}  "
        f"{'faults injected':<28}{'wall s':>8}"
    )
    for name, row in (("without faults", calm), ("with faults", faulty)):
        kills = ", ".join(f"{k} {v}" for k, v in sorted(row["kills"].items())) or "-"  # type: ignore[union-attr]
        print(
            f"{name:<16}{str(row['stop'])[:31]:<32}{row['lost']:>6}{row['duplicated']:>12}"
            f"{row['crashes']:>9}  {kills:<28}{row['seconds']:>8.1f}"
        )
    ratio = float(faulty["seconds"]) / float(calm["seconds"])  # type: ignore[arg-type]
    print(f"wall time with faults / without: {ratio:.2f}x; targets: lost 0, duplicated 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
