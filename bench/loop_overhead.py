"""How much time the loop itself spends per experiment, beside the harness.

    python bench/loop_overhead.py [--sizes 100,2000] [--tpe-size 500] [--out FILE]

    python bench/loop_overhead.py --smoke               # seconds: tiny sizes, checks the bench still runs

Each run is a fresh temporary git repository (params.py with four constants,
an awk harness `evaluate.sh` scoring them as a quadratic bowl, metaexp.yaml)
driven in-process by `metaexp.run.run(...)` (the serial scheduler) in a worker
subprocess of its own, so peak memory is per run. Overhead = an experiment's
time minus its harness time, measured two ways:

* record: `wall_time_s - harness_s` from experiments.jsonl. Stamped before
  the ledger writes the record, so it leaves out jsonl/tsv/Optuna/refs.
* full: the whole `Serial._experiment` call (ask, prepare, evaluate, decide,
  record, tell) minus the harness's own seconds, from the instrumentation below.

The instrumentation wraps git, ledger, Optuna, sandbox, supervisor and
operator entry points with exclusive timers (a nested call's time counts
once, at its innermost instrumented frame; nested calls within one group,
e.g. Git.run under Git.update_refs, count at the outermost frame of that
group). What no wrapper claims is "loop: other". The ledger's writer thread (a record's fsync,
TSV row, artifacts, trial and refs, written while the loop goes on) is not timed: only the main
thread's calls are, the loop's own path.

Not a pytest test: it prints a table and exits 0. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from array import array
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_MEDIAN_MS = 20.0  # per-experiment overhead the loop should stay under
TARGET_GROWTH = 1.3  # median overhead, largest size / smallest size
TARGET_SANDBOX_MS = 15.0  # median extra per experiment with the sandbox (bubblewrap) on
TARGET_KILL_S = 0.5  # kill at the timeout: at most grace_s + this, with no process left
KILL_CHILDREN = 50
WINDOW = 100  # experiments in the "first"/"last" windows and in the TPE buckets
PROGRESS_EVERY = 250  # experiments between progress lines on stderr

# --- the temporary repository

PARAMS = """\
# The target: a point on a quadratic bowl (evaluate.sh scores it).
X = 3.0  # optimum 1.5
Y = -2.0  # optimum -0.5
WIDTH = 7  # optimum 12
LR = 0.003  # optimum 0.01
"""

EVALUATE = """\
#!/bin/sh
# Immutable harness: reads params.py's constants and prints the metric block.
exec awk -F= '
  /^X *=/ { x = $2 + 0 }
  /^Y *=/ { y = $2 + 0 }
  /^WIDTH *=/ { w = $2 + 0 }
  /^LR *=/ { lr = $2 + 0 }
  END {
    loss = (x - 1.5) ^ 2 + (y + 0.5) ^ 2 + 0.1 * (w - 12) ^ 2 + 1e4 * (lr - 0.01) ^ 2
    printf "---\\nloss: %.6f\\n", loss
  }' params.py
"""

SPACE = """\
X: {type: float, low: -5.0, high: 5.0}
Y: {type: float, low: -5.0, high: 5.0}
WIDTH: {type: int, low: 1, high: 32}
"""

OPERATORS = {
    "perturb": "operator:\n  kind: perturb\n  style: {conservative: 0.7, bold: 0.3}\n",
    "tpe": "operator:\n  kind: params\n  space: space.yaml\n  sampler: tpe\n  style: global\n",
}


def make_repo(root: Path, kind: str, n: int, sandbox: str = "auto") -> Path:
    """A fresh repository with one commit; returns the spec's path."""
    spec = (
        f"tag: bench\ntarget: [params.py]\n"
        f"harness:\n  command: sh evaluate.sh\n  immutable: [evaluate.sh]\n  timeout_s: 30\n"
        f"  sandbox: '{sandbox}'\n"
        f"metrics:\n  loss: {{direction: minimize}}\nobjective: {{primary: loss}}\n"
        f"{OPERATORS[kind]}strategy: strategies/hill_climb.yaml\n"
        f"budget:\n  max_experiments: {n}\n  abort_on_consecutive_crashes: null\n"
        f"  max_invalid_streak: null\n  max_wall_clock_h: null\nseed: 0\n"
    )
    files = {"params.py": PARAMS, "evaluate.sh": EVALUATE, "space.yaml": SPACE, "metaexp.yaml": spec}
    for name, text in files.items():
        (root / name).write_text(text)
    who = ["-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false"]
    for argv in (["init", "-q"], ["add", "."], [*who, "commit", "-q", "-m", "bench start"]):
        subprocess.run(["git", *argv], cwd=root, check=True, capture_output=True)
    return root / "metaexp.yaml"


# --- instrumentation


class Profiler:
    """Exclusive wall time per label, snapshotted at the end of each experiment."""

    def __init__(self) -> None:
        self.stack: list[list[Any]] = []  # [label, group, start, time in child frames]
        self.totals: dict[str, float] = defaultdict(float)
        # Per experiment, compact (arrays, not dicts) so the heap peak is mostly the loop's own.
        self.per_exp: dict[str, array[float]] = {"harness": array("d")}  # seconds per label
        self.full = array("d")  # whole experiment minus harness, seconds
        self.faults = array("q")  # minor page faults of this process
        self._faults0 = _minor_faults()

    def wrap(
        self,
        owner: Any,
        attr: str,
        label: str,
        group: str | None = None,
        after: Callable[[Any], None] | None = None,
    ) -> None:
        func = getattr(owner, attr)
        self.per_exp.setdefault(label, array("d"))

        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not threading.main_thread():
                return func(*args, **kwargs)  # the ledger's writer thread: off the loop's path
            if group and self.stack and self.stack[-1][1] == group:
                return func(*args, **kwargs)  # counted by the outer frame of its group
            frame = [label, group, time.perf_counter(), 0.0]
            self.stack.append(frame)
            try:
                result = func(*args, **kwargs)
            finally:
                self._pop(frame)
            if after is not None:
                after(result)
            return result

        setattr(owner, attr, timed)

    def _pop(self, frame: list[Any]) -> None:
        elapsed = time.perf_counter() - frame[2]
        self.stack.pop()
        self.totals[frame[0]] += elapsed - frame[3]
        if self.stack:
            self.stack[-1][3] += elapsed
        elif frame[0] == "loop: other":  # an experiment ended
            for name, values in self.per_exp.items():
                values.append(self.totals.get(name, 0.0))
            self.full.append(elapsed - self.totals.get("harness", 0.0))
            self.totals.clear()
            faults = _minor_faults()
            self.faults.append(faults - self._faults0)
            self._faults0 = faults
            if len(self.full) % PROGRESS_EVERY == 0:
                print(f"  ... {len(self.full)} experiments", file=sys.stderr, flush=True)


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def instrument(prof: Profiler) -> None:
    from metaexp.evaluate import program, runner
    from metaexp.evaluate.sandbox import BaseTree
    from metaexp.operators.params import ParamsOperator
    from metaexp.operators.perturb import PerturbOperator
    from metaexp.record import artifacts
    from metaexp.record.git import Git
    from metaexp.record.ledger import Ledger
    from metaexp.record.rows import Rows
    from metaexp.record.workspace import Workspace
    from metaexp.run import recording, serial
    from metaexp.run.progress import Progress

    prof.wrap(serial.Serial, "_experiment", "loop: other")  # the outermost frame: what nothing else claims
    prof.wrap(recording, "diff_lines", "loop: diff_lines")
    prof.wrap(Progress, "recorded", "loop: progress line")
    prof.wrap(runner, "evaluate", "evaluate: env, log, parse")  # the runner's own name for harness.evaluate
    for name in ("run", "run_bytes", "write_object", "resolve", "refs", "blob"):
        prof.wrap(Git, name, "git: other", "git")
    prof.wrap(Git, "listing", "git: ls-tree (new parent)", "git")
    prof.wrap(Git, "tree_with", "git: blob + tree objects", "git")
    prof.wrap(Git, "commit", "git: commit object", "git")
    prof.wrap(Git, "update_refs", "git: update-ref", "git")
    prof.wrap(Workspace, "sync_worktree", "git: worktree reset --hard", "git")
    prof.wrap(Ledger, "record", "ledger: jsonl write + tsv")
    prof.wrap(os, "fsync", "ledger: fsync")
    prof.wrap(Rows, "trial", "optuna: create_trial")
    prof.wrap(artifacts, "of_try", "artifacts: diff, log tail, files")
    prof.wrap(artifacts, "write", "artifacts: store write")
    prof.wrap(BaseTree, "sandbox", "sandbox: build", "sandbox")
    prof.wrap(BaseTree, "release", "sandbox: release (kept for reuse)", "sandbox")
    prof.wrap(BaseTree, "restore_shared", "sandbox: restore_shared", "sandbox")
    prof.wrap(program, "supervise", "supervisor: request/reply", after=lambda run: _split_harness(prof, run))
    for op in (PerturbOperator, ParamsOperator):
        prof.wrap(op, "propose", "operator: propose")
        prof.wrap(op, "observe", "operator: observe")

    opened = Ledger.open

    def open_and_time_study(self: Ledger, *args: Any) -> list[Any]:
        records = opened(self, *args)  # the ledger's study only; an operator's private study is not counted
        prof.wrap(self.study, "add_trial", "optuna: add_trial (journal)")
        return records

    Ledger.open = open_and_time_study  # type: ignore[method-assign]


def _split_harness(prof: Profiler, run: Any) -> None:
    """The harness's own seconds are not supervisor overhead."""
    prof.totals["supervisor: request/reply"] -= run.seconds
    prof.totals["harness"] += run.seconds


# --- one run, in a worker process


def worker(kind: str, n: int, heap: bool, keep: bool, sandbox: str = "auto") -> dict[str, Any]:
    """One loop run; with `heap`, under tracemalloc (which slows it: its timings are not used)."""
    import optuna  # noqa: F401  imported before tracemalloc starts: the heap peak is the loop's own

    from metaexp.run import run
    from metaexp.spec import load_spec

    prof = Profiler()
    instrument(prof)
    root = Path(tempfile.mkdtemp(prefix=f"metaexp-bench-{kind}-{n}-"))
    try:
        spec_path = make_repo(root, kind, n, sandbox)
        if heap:
            tracemalloc.start()
        t0 = time.perf_counter()
        result = run(load_spec(spec_path), out=io.StringIO())
        total = time.perf_counter() - t0
        heap_peak = tracemalloc.get_traced_memory()[1] / 2**20 if heap else None
        tracemalloc.stop()
        lines = (root / ".metaexp" / "bench" / "experiments.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
    finally:
        if keep:
            print(f"  kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    if not result.stop_reason.startswith("max_experiments"):
        first = next((r for r in records if r["reason"]), {"n": "?", "reason": "?"})
        sys.exit(
            f"{kind}, {n} experiments: the loop stopped early ({result.stop_reason}); "
            f"#{first['n']}: {first['reason']}"
        )
    assert len(records) == len(prof.full), "one record per experiment (a fresh run, no resume)"
    return {
        "kind": kind,
        "n": n,
        "sandbox": sandbox,
        "stop": result.stop_reason,
        "counts": result.tally.counts,
        "status": [r["status"] for r in records],
        "record_ms": [1000 * (r["wall_time_s"] - r["harness_s"]) for r in records],
        "full_ms": [1000 * s for s in prof.full],
        "components_ms": {k: [1000 * s for s in v] for k, v in prof.per_exp.items()},
        "propose_ms": [1000 * s for s in prof.per_exp["operator: propose"]],
        "minflt": list(prof.faults),
        "run_s": total,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        "heap_peak_mb": heap_peak,
    }


def run_worker(
    kind: str, n: int, args: argparse.Namespace, heap: bool = False, sandbox: str = "auto"
) -> dict[str, Any]:
    what = f"{kind}: {n} experiments" + (" under tracemalloc (memory only)" if heap else "")
    what += "" if sandbox == "auto" else f", sandbox {sandbox}"
    print(f"{what} ...", file=sys.stderr, flush=True)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = [sys.executable, __file__, "--worker", f"{kind}:{n}:{sandbox}", "--worker-out", out.name]
        argv += ["--heap"] * heap + ["--keep"] * args.keep
        if subprocess.run(argv).returncode != 0:
            sys.exit(f"{what}: the worker failed (see above)")
        data: dict[str, Any] = json.loads(Path(out.name).read_text())
    print(f"{what}: {data['run_s']:.1f}s", file=sys.stderr, flush=True)
    return data


# --- figures


def stats(xs: list[float]) -> tuple[float, float, float]:
    """median, p90, mean."""
    if not xs:
        return (float("nan"),) * 3
    p90 = statistics.quantiles(xs, n=10)[-1] if len(xs) > 1 else xs[0]
    return statistics.median(xs), p90, statistics.fmean(xs)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def fmt(row: list[str]) -> str:  # the label column left-aligned, figures right-aligned
        cells = zip(row, widths, strict=True)
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))

    return "\n".join([fmt(rows[0]), "  ".join("-" * w for w in widths), *map(fmt, rows[1:])])


def tried(run: dict[str, Any], key: str, status: str | None = None) -> list[float]:
    """Per-experiment values after the baseline (which runs no operator and commits nothing)."""
    return [x for x, s in zip(run[key][1:], run["status"][1:], strict=True) if status is None or s == status]


def overhead_section(runs: list[dict[str, Any]]) -> str:
    w = WINDOW
    rows = [
        [
            "perturb, journal storage (ms)",
            "median",
            "p90",
            "mean",
            f"first{w} med",
            f"last{w} med",
            f"discard first{w} med",
            f"discard last{w} med",
            "max RSS MB",
            "heap peak MB*",
            "minflt/exp",
            "run s",
        ]
    ]
    for r in runs:
        for how in ("record", "full"):
            xs, discards = tried(r, f"{how}_ms"), tried(r, f"{how}_ms", "discard")
            heap = r.get("heap_peak_mb")
            rows.append(
                [
                    f"n={r['n']} {how}",
                    *(f"{v:.2f}" for v in stats(xs)),
                    f"{median(xs[:w]):.2f}",
                    f"{median(xs[-w:]):.2f}",
                    f"{median(discards[:w]):.2f}",
                    f"{median(discards[-w:]):.2f}",
                    f"{r['maxrss_mb']:.0f}",
                    "-" if heap is None else f"{heap:.1f}",
                    f"{mean(r['minflt'][1:]):.0f}",
                    f"{r['run_s']:.1f}",
                ]
            )
    lines = [table(rows), ""]
    for r in runs:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()))
        lines.append(f"n={r['n']}: {counts}")
    small, large = runs[0], runs[-1]
    for how in ("record", "full"):
        med = median(tried(large, f"{how}_ms"))
        growth = med / median(tried(small, f"{how}_ms"))
        discards = tried(large, f"{how}_ms", "discard")
        drift = median(discards[-w:]) / median(discards[:w])
        flag = "" if med <= TARGET_MEDIAN_MS and growth <= TARGET_GROWTH else "   <-- over target"
        lines.append(
            f"{how:>6}: median at n={large['n']} {med:.2f} ms (target <= {TARGET_MEDIAN_MS:g}); "
            f"growth n={small['n']}->{large['n']} {growth:.2f}x (target <= {TARGET_GROWTH}x); "
            f"discards last{w}/first{w} at n={large['n']} {drift:.2f}x{flag}"
        )
    lines += [
        "record = wall_time_s - harness_s from experiments.jsonl: each row's clock runs from the start of "
        "recording the previous row, so it includes recording (jsonl/tsv/fsync/Optuna/update-ref/reset).",
        "full = the whole Serial._experiment call, recording included, minus the harness's own seconds.",
        "discard = only experiments whose status is discard (no branch move): the same work at every size, "
        "so a rise from first to last shows a rescan of history.",
        "* tracemalloc peak of a separate run (--heap), above what was allocated before the loop started; "
        "minflt/exp: minor page faults of the driver per experiment.",
    ]
    return "\n".join(lines)


def breakdown_section(runs: list[dict[str, Any]]) -> str:
    w, large = WINDOW, runs[-1]
    head = [
        "component (ms per experiment, mean)",
        *(f"n={r['n']}" for r in runs),
        f"first{w} n={large['n']}",
        f"last{w} n={large['n']}",
        "discards",
        "keeps",
        "% of full",
    ]
    labels = sorted({k for r in runs for k in r["components_ms"]} - {"harness"})
    total = mean(tried(large, "full_ms"))

    def cells(get: Callable[[dict[str, Any], str | None], list[float]]) -> list[str]:
        xs = get(large, None)
        return [
            *(f"{mean(get(r, None)):.3f}" for r in runs),
            f"{mean(xs[:w]):.3f}",
            f"{mean(xs[-w:]):.3f}",
            f"{mean(get(large, 'discard')):.3f}",
            f"{mean(get(large, 'keep')):.3f}",
            f"{100 * mean(xs) / total:.1f}",
        ]

    def component(label: str) -> Callable[[dict[str, Any], str | None], list[float]]:
        def get(r: dict[str, Any], status: str | None) -> list[float]:
            values = r["components_ms"].get(label, [0.0] * len(r["status"]))
            pairs = zip(values[1:], r["status"][1:], strict=True)
            return [x for x, s in pairs if status is None or s == status]

        return get

    rows = [head, *([label, *cells(component(label))] for label in labels)]
    rows.append(["sum = full overhead", *cells(lambda r, s: tried(r, "full_ms", s))])
    rows.append(["(harness itself, not overhead)", *cells(component("harness"))[:-1], ""])
    return table(rows)


def tpe_section(run: dict[str, Any]) -> str:
    rows = [["params/tpe, 3 params: ParamsOperator.propose (ms)", "median", "p90", "mean"]]
    proposals = run["propose_ms"]  # index i is experiment i + 1
    for lo in range(1, run["n"], WINDOW):
        xs = proposals[lo : lo + WINDOW]
        rows.append([f"experiments {lo + 1}-{lo + len(xs)}", *(f"{v:.2f}" for v in stats(xs))])
    med, p90, avg = stats(tried(run, "full_ms"))
    summary = (
        f"full loop overhead incl. propose: median {med:.2f} ms, p90 {p90:.2f}, mean {avg:.2f}; "
        f"max RSS {run['maxrss_mb']:.0f} MB; {run['run_s']:.1f}s for {run['n']} experiments"
    )
    return "\n".join([table(rows), summary])


def sandbox_section(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """The same run with harness.sandbox off and required, alternated: a whole experiment's time."""

    def whole(r: dict[str, Any]) -> list[float]:  # loop overhead + the harness (bwrap starts in it)
        harness = r["components_ms"]["harness"]
        return [f + h for f, h in zip(tried(r, "full_ms"), harness[1:], strict=True)]

    rows = [["sandbox (ms per experiment)", "whole median", "whole p90", "harness median", "full median"]]
    for off, on in pairs:
        for r in (off, on):
            rows.append(
                [
                    f"n={r['n']} sandbox {r['sandbox']}",
                    *(f"{v:.2f}" for v in stats(whole(r))[:2]),
                    f"{median(r['components_ms']['harness'][1:]):.2f}",
                    f"{median(tried(r, 'full_ms')):.2f}",
                ]
            )
    extra = median([median(whole(on)) - median(whole(off)) for off, on in pairs])
    flag = "" if extra <= TARGET_SANDBOX_MS else "   <-- over target"
    return "\n".join(
        [
            table(rows),
            f"sandbox extra per experiment (median over {len(pairs)} alternated pairs): {extra:.2f} ms "
            f"(target <= {TARGET_SANDBOX_MS:g}){flag}",
            "whole = full overhead + the harness's own seconds (bubblewrap's start and mounts are in the "
            "harness's time); the runs alternate off/required so the machine's drift hits both.",
        ]
    )


TREE = f"""\
import os, signal, subprocess, sys, time
# {KILL_CHILDREN} children that ignore SIGTERM, half in sessions of their own, then hang.
for i in range({KILL_CHILDREN}):
    subprocess.Popen(["sh", "-c", "trap '' TERM; while :; do sleep 1; done", sys.argv[1]],
                     start_new_session=bool(i % 2))
print("started", flush=True)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(1000)
"""


def _with_marker(marker: str) -> list[int]:
    """Processes whose command line names `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


def kill_section(repeats: int, timeout_s: float = 2.0, grace_s: float = 1.0) -> str:
    """A harness whose 50 children ignore SIGTERM, hanging past its timeout: how long the kill takes
    after the timeout, and what is left, with the sandbox off and on (the supervisor's own code path)."""
    from metaexp.errors import SpecError
    from metaexp.evaluate.isolation import isolation_for, wrap
    from metaexp.evaluate.supervisor import supervise

    head = ["kill at the timeout, 50-child tree", "latency median s", "latency max s", "survivors", "started"]
    rows = [head]
    worst = 0.0
    survivors_total = 0
    for mode in ("off", "required"):
        try:
            iso = isolation_for(mode, False)
        except SpecError as exc:  # no bubblewrap here: say so, keep the rest
            rows.append([f"sandbox {mode}", "-", "-", "-", f"skipped: {exc}"])
            continue
        latencies, survivors, started = [], 0, 0
        for i in range(repeats):
            box = Path(tempfile.mkdtemp(prefix="metaexp-bench-kill-"))
            try:
                (box / "tree.py").write_text(TREE)
                marker = f"metaexp-bench-kill-{os.getpid()}-{mode}-{i}"
                argv = wrap(iso, [sys.executable, "tree.py", marker], box, {}, False, False)
                t0 = time.monotonic()
                supervise(
                    argv,
                    cwd=str(box),
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                    log_path=str(box / "run.log"),
                    timeout_s=timeout_s,
                    grace_s=grace_s,
                )
                latencies.append(time.monotonic() - t0 - timeout_s)
                survivors += len(_with_marker(marker))
                started += "started" in (box / "run.log").read_text()
            finally:
                shutil.rmtree(box, ignore_errors=True)
        worst = max(worst, max(latencies))
        survivors_total += survivors
        rows.append(
            [
                f"sandbox {mode}",
                f"{median(latencies):.3f}",
                f"{max(latencies):.3f}",
                str(survivors),
                f"{started}/{repeats}",
            ]
        )
    ok = worst <= grace_s + TARGET_KILL_S and survivors_total == 0
    return "\n".join(
        [
            table(rows),
            f"kill latency = wall time of the supervised run minus timeout_s={timeout_s:g} "
            f"(grace_s={grace_s:g}): worst {worst:.3f} s (target <= grace_s + {TARGET_KILL_S:g} = "
            f"{grace_s + TARGET_KILL_S:g} s), survivors {survivors_total} (target 0)"
            + ("" if ok else "   <-- over target"),
        ]
    )


# --- command line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,2000", help="perturb runs: experiments each, comma-separated")
    parser.add_argument("--tpe-size", type=int, default=500, help="experiments in the TPE run (0: skip)")
    parser.add_argument(
        "--heap",
        action="store_true",
        help="repeat each perturb run under tracemalloc for the Python heap's peak "
        "(about doubles the time; the timings always come from untraced runs)",
    )
    parser.add_argument(
        "--sandbox-size",
        type=int,
        default=300,
        help="experiments in each of the sandbox off/required runs (0: skip the sandbox figures)",
    )
    parser.add_argument("--sandbox-pairs", type=int, default=2, help="alternated off/required pairs")
    parser.add_argument("--kill-repeats", type=int, default=5, help="timeouts of the 50-child tree per mode")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repositories")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes (10, 20; TPE 10): checks the bench runs"
    )
    parser.add_argument("--out", help="also write the figures and the raw per-experiment data as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, n, sandbox = args.worker.split(":")
        result = worker(kind, int(n), args.heap, args.keep, sandbox)
        Path(args.worker_out).write_text(json.dumps(result))
        return 0
    if args.smoke:
        args.sizes, args.tpe_size = "10,20", 10
        args.sandbox_size, args.sandbox_pairs, args.kill_repeats = 10, 1, 1
    sizes = sorted(int(s) for s in args.sizes.split(","))
    runs = [run_worker("perturb", n, args) for n in sizes]
    for r in runs if args.heap else []:
        r["heap_peak_mb"] = run_worker("perturb", r["n"], args, heap=True)["heap_peak_mb"]
    tpe = run_worker("tpe", args.tpe_size, args) if args.tpe_size else None
    pairs = []
    from metaexp.evaluate.isolation import available

    bwrap = available() == "bwrap"
    for _ in range(args.sandbox_pairs if args.sandbox_size and bwrap else 0):
        pairs.append(
            tuple(run_worker("perturb", args.sandbox_size, args, sandbox=m) for m in ("off", "required"))
        )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    machine = (
        f"{os.cpu_count()} CPUs; load average at the end {load} (other work on the machine skews "
        "these figures); harness `sh evaluate.sh` (awk)"
    )
    sections = [machine, overhead_section(runs), breakdown_section(runs)]
    if tpe:
        sections.append(tpe_section(tpe))
    if pairs:
        sections.append(sandbox_section(pairs))
    elif args.sandbox_size:
        sections.append("sandbox figures skipped: bubblewrap does not work on this machine")
    if args.kill_repeats:
        print(f"kill at the timeout: {args.kill_repeats} x 2 ...", file=sys.stderr, flush=True)
        sections.append(kill_section(args.kill_repeats))
    text = "\n\n".join(sections)
    print(text)
    if args.out:
        Path(args.out).write_text(json.dumps({"table": text, "runs": runs, "tpe": tpe}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
