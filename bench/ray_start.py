"""Time to the first evaluation of a population run on Ray, and what happens before it.

The landscape example (harnesses/landscape) with strategies/islands.yaml, run as `metaexp run`
runs it, each case in a fresh process; the phases are timed from the process's start:

* local:   ray.address null, so the run starts a local Ray (what `metaexp run` does by default);
* running: a Ray started beforehand (`ray start --head`), joined by its address (`ray.address:
  auto` does the same when it is the machine's only cluster; Ray 2.60's token authentication
  needs RAY_AUTH_MODE=token in the environment of a driver that joins by address);
* second:  a second population run in the same process, as a study or a meta study runs its later
  runs: Ray is up, the workers are warm, and the lineages' processes are kept from the first run.

    python bench/ray_start.py [--repeats 2] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("imported", "ray up", "workers warm", "baseline recorded", "first proposal recorded")


# --- in the measuring child process


def _child(spec_paths: list[str], t0: float) -> None:
    """Run each spec (one after another, in this process) and print each phase's time since t0."""
    import ray

    from metaexp.record import ledger
    from metaexp.run import cluster, run

    try:
        from metaexp.run.hosts import kept
    except ImportError:  # a checkout from before kept hosts (to measure it against)
        kept = contextlib.nullcontext
    from metaexp.spec import load_spec

    stamps: dict[str, float] = {"imported": time.time() - t0}
    original_init, original_warm, original_record = ray.init, cluster.warm_workers, ledger.Ledger.record

    def init(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = original_init(*args, **kwargs)
        stamps["ray up"] = time.time() - t0
        return result

    def warm(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = original_warm(*args, **kwargs)
        stamps["workers warm"] = time.time() - t0
        return result

    def record(self, rec, moves=None):  # type: ignore[no-untyped-def]
        original_record(self, rec, moves)
        key = "baseline recorded" if rec.n == 1 else "first proposal recorded"
        stamps.setdefault(key, time.time() - t0)

    ray.init, cluster.warm_workers, ledger.Ledger.record = init, warm, record  # type: ignore[method-assign]
    with kept():  # as a study or a meta study runs them
        for path in spec_paths:
            stamps = {"imported": time.time() - t0} if path != spec_paths[0] else stamps
            start = time.time() - t0
            run(load_spec(path), out=io.StringIO())
            print(json.dumps({"start": start, **stamps}), flush=True)


# --- the driver


def make_project(root: Path, tag: str, address: str | None) -> Path:
    if not root.exists():
        shutil.copytree(ROOT / "harnesses" / "landscape", root, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "search_spaces", root / "search_spaces")
        for args in (
            ["init", "-q"],
            ["add", "-A"],
            ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "s"],
        ):
            subprocess.run(["git", *args], cwd=root, check=True)
    spec = yaml.safe_load((root / "metaexp.yaml").read_text())
    spec.update(tag=tag, strategy="strategies/islands.yaml", budget={"max_experiments": 3})
    spec["ray"] = {"address": address, "max_concurrent_evals": 4, "eval_resources": {"num_cpus": 1}}
    path = root / f"{tag}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def measure(specs: list[Path]) -> list[dict[str, float]]:
    t0 = time.time()
    here = str(Path(__file__).resolve().parent)
    code = f"import sys; sys.path.insert(0, {here!r}); import ray_start as b; b._child(sys.argv[1:], {t0!r})"
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, specs)],
        cwd=specs[0].parent,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "token"},  # as `ray start` clusters need
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the measured run failed:\n{proc.stderr[-3000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def start_cluster() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            "ray",
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            "--block",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    address = None
    assert proc.stdout is not None
    for line in proc.stdout:
        text = line.decode(errors="replace")
        if "ray.init(address=" in text or "--address=" in text:
            address = text.split("address=")[1].split()[0].strip("'\"")
        if "block forever" in text:
            break
    if address is None:
        raise SystemExit("ray start --head printed no address")
    return proc, address


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=2, help="measurements per case (the median is shown)")
    parser.add_argument("--smoke", action="store_true", help="the local case once")
    args = parser.parse_args()
    cases: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "landscape"
        for i in range(1 if args.smoke else args.repeats):
            print(f"local {i} ...", file=sys.stderr, flush=True)
            first, second = make_project(project, f"local{i}", None), make_project(project, f"again{i}", None)
            both = measure([first] if args.smoke else [first, second])
            cases.setdefault("local", []).append(both[0])
            if len(both) > 1:
                cases.setdefault("second", []).append(both[1])
        if not args.smoke:
            cluster, address = start_cluster()
            try:
                for i in range(args.repeats):
                    print(f"running {i} ...", file=sys.stderr, flush=True)
                    cases.setdefault("running", []).append(
                        measure([make_project(project, f"run{i}", address)])[0]
                    )
            finally:
                os.killpg(cluster.pid, signal.SIGTERM)
                cluster.wait()
    print(
        f"time to each phase of a population run (4 islands, 4 slots), seconds since the process started; "
        f"median of {len(cases['local'])}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'case':<9}" + "".join(f"{p:>25}" for p in PHASES))
    for name, rows in cases.items():
        cells = []
        for phase in PHASES:
            values = [
                row[phase] - (row["start"] if name == "second" else 0.0) for row in rows if phase in row
            ]
            cells.append(f"{statistics.median(values):>25.2f}" if values else f"{'-':>25}")
        print(f"{name:<9}" + "".join(cells))
    print("second: times since the second run began, in the process the first one started Ray in")
    return 0


if __name__ == "__main__":
    sys.exit(main())
