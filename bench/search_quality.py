"""Search quality against what a user would otherwise pick, side by side in one run.

    python bench/search_quality.py [--parts bbob,landscapes,binpack,crashes] [--seeds 5] [--smoke]

* bbob: BBOB functions of coco-experiment (Rastrigin f15, Schwefel f20, Gallagher's 21 peaks f22,
  Katsuura f23) in d = 5 and 10 on [-5, 5]^d, instance 1 + seed. Optuna's CmaEsSampler and
  RandomSampler called directly, in this process, against real metaexp runs (a git repository, the
  harness in a sandboxed subprocess, the ledger): params + cmaes as shipped (a single lineage),
  the same with restarts (strategies/restarts.yaml: IPOP-CMA-ES), four islands of it, and
  params + lq-cmaes (CMA-ES whose candidates a linear-quadratic model screens) alone, with
  restarts and as four islands, and the binpack example's memetic hybrid (llm: null) with a tpe
  or cmaes numeric arm, and with a cmaes or lq-cmaes arm whose steps are written whole (style
  global: the sampler's own trials) (`--methods` picks some). Each metaexp harness run asks this
  process for f(x) over a Unix socket, so a run is not dominated by importing numpy. Figures: the
  median over seeds of the best f - f_opt after 100 and 300 evaluations, a metaexp cell marked (+)
  or (-) where a two-sided Mann-Whitney U test of its seeds against CMA-ES alone's gives p < 0.05
  (a median's side of CMA-ES's is often a coin's toss at 5 seeds). Targets: params + cmaes
  <= CMA-ES alone on every function; restarts or islands <= 0.8 x CMA-ES alone on these
  multimodal functions.
* landscapes: `metaexp study` of every shipped strategy on the deceptive trap and NK at budgets 60
  and 200 (ordered scheduling): success rates with Wilson intervals. Target at 200: the best
  population strategy >= 80 % on both, hill_climb < 20 %. Beside them, in the same run, params with
  the surrogate sampler (hill_climb and ga) against random search and Optuna's TPE alone.
  `--nk-seed N`: NK with other tables (held out).
* binpack: the binpack example's offline operators at 200 evaluations against its best-fit
  baseline (4.75 % excess): the median best excess. Target <= 4.0 %.
* crashes: a harness that crashes wherever X0 > an edge (as a learning rate too high diverges), on
  the sphere in [-5, 5]^4 whose optimum lies close to the region: Optuna's CmaEsSampler alone
  (crashes told FAIL) against metaexp's params + cmaes and + lq-cmaes. How many seeds reach the
  optimum, how many end stuck in the region (`--crash-seeds`, 20).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FUNCTIONS = {15: "Rastrigin", 20: "Schwefel", 22: "Gallagher 21", 23: "Katsuura"}
DIMS = (5, 10)
BUDGETS = (100, 300)
METHODS = (
    "optuna cmaes",
    "optuna cmaes+tpe",
    "optuna random",
    "metaexp cmaes",
    "metaexp restarts",
    "metaexp islands",
    "metaexp lq-cmaes",
    "metaexp lq-restarts",
    "metaexp lq-islands",
    "metaexp memetic tpe",
    "metaexp memetic cmaes",
    "metaexp memetic cmaes global",
    "metaexp memetic lq-cmaes global",
)
ISLANDS = {"islands": 4, "population": 1, "escape": {"patience": 40, "action": "random_restart"}}
# the binpack example's memetic search (harnesses/binpack/memetic.yaml): the hybrid without an LLM
MEMETIC = {"kind": "hybrid", "llm": None, "tune": {"sampler": "cmaes", "budget": 8}}
MEMETIC |= {"schedule": {"llm": 0.3, "params": 0.7}, "style": {"conservative": 0.7, "bold": 0.3}}
HILL_CLIMB = "strategies/hill_climb.yaml"
# metaexp's methods: (params' sampler, or the operator; strategy)
STRATEGIES: dict[str, tuple[str | dict[str, Any], Any]] = {
    "metaexp cmaes": ("cmaes", "strategies/hill_climb.yaml"),
    "metaexp restarts": ("cmaes", "strategies/restarts.yaml"),
    "metaexp islands": ("cmaes", ISLANDS),
    "metaexp lq-cmaes": ("lq-cmaes", "strategies/hill_climb.yaml"),
    "metaexp lq-restarts": ("lq-cmaes", "strategies/restarts.yaml"),
    "metaexp lq-islands": ("lq-cmaes", ISLANDS),
    "metaexp memetic tpe": ({**MEMETIC, "sampler": "tpe"}, "strategies/hill_climb.yaml"),
    "metaexp memetic cmaes": ({**MEMETIC, "sampler": "cmaes"}, "strategies/hill_climb.yaml"),
    # the numeric arm writes the suggestion whole: each step is the sampler's own trial
    "metaexp memetic cmaes global": ({**MEMETIC, "sampler": "cmaes", "style": "global"}, HILL_CLIMB),
    "metaexp memetic lq-cmaes global": ({**MEMETIC, "sampler": "lq-cmaes", "style": "global"}, HILL_CLIMB),
}
LANDSCAPE_STRATEGIES = ["hill_climb", "explore_exploit", "restarts", "islands", "pbt", "ga"]
# operator -> (params' sampler, or None for the landscape's own perturb; the strategies it runs under)
LANDSCAPE_OPERATORS: dict[str, tuple[str | None, list[str]]] = {
    "perturb": (None, LANDSCAPE_STRATEGIES),
    "random": ("random", ["hill_climb"]),  # random search: what any sampler must beat
    "tpe": ("tpe", ["hill_climb"]),  # Optuna alone
    "surrogate": ("surrogate", ["hill_climb", "ga"]),
}

# --mixed: two categoricals beside the numbers. SHIFT picks which translation of x the function
# sees (a categorical that changes the numbers' landscape), LEVEL adds a constant to f.
SHIFTS = {"none": 0.0, "up": 1.5, "down": -1.5, "zigzag": 1.5}  # zigzag: +1.5, -1.5, +1.5, ...
LEVELS = {"low": 0.0, "mid": 2.0, "high": 5.0}
# a harness's first lines: the X<i> values of params.py, in order, as x (and the file as text)
READ_X = """import os, re, socket, sys
text = open('params.py').read()
x = [float(v) for _, v in sorted((int(i), v) for i, v in re.findall(r'^X(\\d+) = (\\S+)', text, re.M))]
"""
# --mixed: the categoricals too, SHIFT, then LEVEL
HARNESS = (
    READ_X
    + """mixed = re.findall(r"^(?:SHIFT|LEVEL) = .(\\w+).", text, re.M)
with socket.socket(socket.AF_UNIX) as s:
    s.connect(os.environ['BBOB_SOCKET'])
    s.sendall((' '.join([*sys.argv[1:4], *mixed, *map(repr, x)]) + '\\n').encode())
    f = s.makefile().readline().strip()
print('---')
print('f:', f)
"""
)


def mixed_point(x: list[float], shift: str) -> list[float]:
    """x as the function sees it under SHIFT."""
    return [v + SHIFTS[shift] * (-1 if shift == "zigzag" and i % 2 else 1) for i, v in enumerate(x)]


_PROBLEMS: dict[tuple[int, int, int], Any] = {}  # per process: cocoex problems by (fid, dim, instance)


# --------------------------------------------------------------------------- the BBOB problems


def problem(fid: int, dim: int, instance: int) -> Any:
    key = (fid, dim, instance)
    if key not in _PROBLEMS:
        import cocoex

        options = f"dimensions:{dim} function_indices:{fid} instance_indices:{instance}"
        _PROBLEMS[key] = next(iter(cocoex.Suite("bbob", "", options)))
    return _PROBLEMS[key]


def optimum(fid: int, dim: int, instance: int) -> float:
    """f at the problem's optimum (coco writes the optimal x to a file in the working directory)."""
    import numpy as np

    p, here = problem(fid, dim, instance), os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            p._best_parameter("print")
            x = np.array([float(v) for v in Path("._bbob_problem_best_parameter.txt").read_text().split()])
        finally:
            os.chdir(here)
    return float(p(x))


class _Evaluate(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        import numpy as np

        fid, dim, inst, *rest = self.rfile.readline().decode().split()
        f = problem(int(fid), int(dim), int(inst))
        shift, level = (rest.pop(0), LEVELS[rest.pop(0)]) if rest[0] in SHIFTS else ("none", 0.0)  # --mixed
        x = mixed_point([float(v) for v in rest], shift)
        self.wfile.write(f"{float(f(np.array(x))) + level!r}\n".encode())


def serve(path: Path) -> None:
    server = socketserver.ThreadingUnixStreamServer(str(path), _Evaluate)
    threading.Thread(target=server.serve_forever, daemon=True).start()


# --------------------------------------------------------------------------- one run


def optuna_run(fid: int, dim: int, seed: int, sampler: str, evals: int, mixed: bool = False) -> list[float]:
    import numpy as np
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    p = problem(fid, dim, 1 + seed)
    if sampler == "cmaes":  # as shipped: a categorical is drawn at random (said once, not per trial)
        chosen = optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    elif sampler == "cmaes+tpe":  # a categorical from TPE, as metaexp's cmaes does it
        tpe = optuna.samplers.TPESampler(seed=seed)
        chosen = optuna.samplers.CmaEsSampler(
            seed=seed, warn_independent_sampling=False, independent_sampler=tpe
        )
    else:
        chosen = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=chosen)
    values = []
    for _ in range(evals):
        trial = study.ask()
        x = [trial.suggest_float(f"X{i}", -5.0, 5.0) for i in range(dim)]
        level = 0.0
        if mixed:
            x = mixed_point(x, trial.suggest_categorical("SHIFT", list(SHIFTS)))
            level = LEVELS[trial.suggest_categorical("LEVEL", list(LEVELS))]
        value = float(p(np.array(x))) + level
        study.tell(trial, value)
        values.append(value)
    return values


def box(dim: int) -> tuple[str, str]:
    """params.py with X0 .. X<dim-1> at 0 (the box's centre), and its space: [-5, 5] each."""
    params = "".join(f"X{i} = 0.0\n" for i in range(dim))
    space = "".join(f"X{i}: {{type: float, low: -5.0, high: 5.0}}\n" for i in range(dim))
    return params, space


def metaexp_run(
    fid: int, dim: int, seed: int, method: str, evals: int, tmp: Path, sock: Path, mixed: bool = False
) -> list[float]:
    """A real metaexp run (serial scheduler: no Ray in a pool worker), its evaluated values in order."""
    root = tmp / f"f{fid}-d{dim}-s{seed}-{method.split(' ', 1)[-1].replace(' ', '-')}"
    operator, strategy = STRATEGIES[method]
    if isinstance(operator, str):
        operator = {"kind": "params", "sampler": operator}
    root.mkdir(parents=True)
    params, space = box(dim)
    if mixed:
        params += "SHIFT = 'none'\nLEVEL = 'low'\n"
        space += f"SHIFT: {{type: categorical, choices: {list(SHIFTS)}}}\n"
        space += f"LEVEL: {{type: categorical, choices: {list(LEVELS)}}}\n"
    (root / "params.py").write_text(params)
    (root / "evaluate.py").write_text(HARNESS)
    (root / "space.yaml").write_text(space)
    harness = {"command": f"python evaluate.py {fid} {dim} {1 + seed}", "immutable": ["evaluate.py"]}
    spec = {
        "tag": "bbob",
        "target": ["params.py"],
        "harness": {**harness, "env": {"BBOB_SOCKET": str(sock)}, "timeout_s": 30, "sandbox": "off"},
        "metrics": {"f": {"direction": "minimize"}},
        "objective": {"primary": "f"},
        "operator": {**operator, "space": "space.yaml"},
        "strategy": strategy,
        "budget": {"max_experiments": evals, "max_invalid_streak": None, "abort_on_consecutive_crashes": 5},
        "seed": seed,
    }
    if operator["kind"] == "hybrid":  # its experiments tune: a budget of harness runs
        spec["budget"] = {**spec["budget"], "max_experiments": None, "max_evaluations": evals}
    values = []  # every harness run's value in order (a tuned experiment's runs, each)
    for r in run_in_repo(root, spec):
        runs = [run["value"] for run in r.extra.get("runs", [])]
        values += runs if runs else [r.value] if r.status.harness_ran else []
    return [v for v in values if v is not None][:evals]


def run_in_repo(root: Path, spec: dict[str, Any]) -> list[Any]:
    """Commit what `root` holds to a fresh git repository, run `spec` there (serial scheduler: no
    Ray in a pool worker) and return its records."""
    from metaexp.record.records import read_records
    from metaexp.run import run
    from metaexp.spec import load_spec

    (root / "metaexp.yaml").write_text(yaml.safe_dump(spec))
    who = ["-c", "user.name=b", "-c", "user.email=b@b", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], [*who, "commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    run(load_spec(root / "metaexp.yaml"), out=io.StringIO(), scheduler="serial")
    return read_records(root / ".metaexp" / spec["tag"] / "experiments.jsonl")


# --------------------------------------------------------------------------- crashes

# scenario: (X0 above which the harness crashes, the optimum of every coordinate, evaluations); the
# sphere in [-5, 5]^4 from the baseline 0 (which runs: a ratchet needs it), the optimum close to the
# region, as the best learning rate is often just below the one that diverges
CRASH_SCENARIOS = {
    "close": (0.5, 0.25, 90),
    "at the edge": (1.05, 1.0, 90),
}
CRASH_METHODS = ("optuna cmaes", "metaexp cmaes", "metaexp lq-cmaes")
CRASH_DIM = 4
CRASH_HARNESS = (
    READ_X
    + """edge, optimum = float(sys.argv[1]), float(sys.argv[2])
if x[0] > edge:
    sys.exit('diverged: X0 > %g' % edge)
print('---')
print('f:', sum((v - optimum) ** 2 for v in x))
"""
)


def crash_job(job: tuple[str, int, str, int | None, str]) -> dict[str, Any]:
    """One search of a crash scenario: its values in order, None where the harness crashed."""
    scenario, seed, method, smoke, tmp = job
    edge, optimum, evals = CRASH_SCENARIOS[scenario]
    evals = smoke or evals
    values: list[float | None] = []
    probes = 0
    if method == "optuna cmaes":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.CmaEsSampler(seed=seed))
        for _ in range(evals):
            trial = study.ask()
            x = [trial.suggest_float(f"X{i}", -5.0, 5.0) for i in range(CRASH_DIM)]
            values.append(None if x[0] > edge else sum((v - optimum) ** 2 for v in x))
            if values[-1] is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, values[-1])
    else:
        root = Path(tmp) / f"crash-{scenario}-s{seed}-{method.split()[-1]}"
        root.mkdir(parents=True)
        params, space = box(CRASH_DIM)
        (root / "params.py").write_text(params)
        (root / "evaluate.py").write_text(CRASH_HARNESS)
        (root / "space.yaml").write_text(space)
        spec = {
            "tag": "crash",
            "target": ["params.py"],
            "harness": {
                "command": f"python evaluate.py {edge} {optimum}",
                "immutable": ["evaluate.py"],
                "timeout_s": 30,
                "sandbox": "off",
            },
            "metrics": {"f": {"direction": "minimize"}},
            "objective": {"primary": "f"},
            "operator": {"kind": "params", "sampler": method.split()[-1], "space": "space.yaml"},
            "strategy": HILL_CLIMB,
            # the default abort_on_consecutive_crashes (3): a streak's probe runs the parent again,
            # which counts as an evaluation
            "budget": {"max_experiments": None, "max_evaluations": evals, "max_invalid_streak": None},
            "seed": seed,
        }
        records = [r for r in run_in_repo(root, spec) if r.status.harness_ran]  # the baseline first
        values = [None if r.status.failed else r.value for r in records]
        probes = sum("probe" in r.extra for r in records)
    return {
        "scenario": scenario,
        "seed": seed,
        "method": method,
        "values": values,
        "probes": probes,
        "evals": evals,
    }


def crashes(seeds: int, workers: int, smoke: int | None = None) -> str:
    """Each method on each scenario, `seeds` seeds (`smoke`: that many evaluations, not the
    scenario's): crash_table."""
    with tempfile.TemporaryDirectory(prefix="search-quality-") as tmp:
        cells = [(sc, s, m) for sc in CRASH_SCENARIOS for s in range(seeds) for m in CRASH_METHODS]
        jobs = [(sc, s, m, smoke, tmp) for sc, s, m in cells]
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            rows = list(pool.imap_unordered(crash_job, jobs))
    return crash_table(rows)


def crash_table(rows: list[dict[str, Any]]) -> str:
    """How many seeds reach the optimum (f < 0.05), how many end stuck in the region (every one of
    their last 30 evaluations crashed), the median best, the share of evaluations that crashed, how
    many runs stopped before their budget (a crash-streak abort) and the evaluations their crash
    streaks' probes took (metaexp runs the parent again; Optuna has neither)."""
    lines = [
        "| scenario | method | reached f < 0.05 | stuck (last 30 all crash) | median best | crashed "
        "| stopped early | probes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario, (edge, optimum, _) in CRASH_SCENARIOS.items():
        for method in CRASH_METHODS:
            runs = [r for r in rows if (r["scenario"], r["method"]) == (scenario, method)]
            if not runs:
                continue
            cell = [r["values"] for r in runs]
            probes = sum(r.get("probes", 0) for r in runs)
            stopped = sum(
                len(r["values"]) + r.get("probes", 0) < r.get("evals", len(r["values"])) for r in runs
            )
            bests = [min((v for v in vs if v is not None), default=float("inf")) for vs in cell]
            stuck = sum(len(vs) >= 30 and all(v is None for v in vs[-30:]) for vs in cell)
            crashed = sum(v is None for vs in cell for v in vs) / max(1, sum(len(vs) for vs in cell))
            budget = runs[0].get("evals", len(cell[0]))
            where = f"{scenario} (X0 > {edge} crashes, optimum {optimum}, {budget} evals)"
            lines.append(
                f"| {where} | {method} | {sum(b < 0.05 for b in bests)}/{len(cell)} | {stuck}/{len(cell)} "
                f"| {statistics.median(bests):.3g} | {crashed:.0%} | {stopped}/{len(cell)} | {probes} |"
            )
    return "\n".join(lines)


def bbob_job(job: tuple[int, int, int, str, tuple[int, ...], str, bool]) -> dict[str, Any]:
    fid, dim, seed, method, budgets, tmp, mixed = job
    t0 = time.monotonic()
    if method.startswith("optuna"):
        values = optuna_run(fid, dim, seed, method.split()[-1], max(budgets), mixed)
    else:
        sock = Path(tmp) / f"bbob-{os.getpid()}.sock"
        if not sock.exists():
            serve(sock)
        values = metaexp_run(fid, dim, seed, method, max(budgets), Path(tmp), sock, mixed)
    f_opt = optimum(fid, dim, 1 + seed)
    best = {b: min(values[:b]) - f_opt for b in budgets}
    return {"fid": fid, "dim": dim, "seed": seed, "method": method, "best": best, "s": time.monotonic() - t0}


def bbob(
    seeds: int,
    workers: int,
    budgets: tuple[int, ...],
    dims: tuple[int, ...],
    methods: tuple[str, ...] = METHODS,
    mixed: bool = False,
) -> str:
    rows = []
    with tempfile.TemporaryDirectory(prefix="search-quality-") as tmp:
        cells = [(f, d, s) for f in FUNCTIONS for d in dims for s in range(seeds)]
        jobs = [(f, d, s, m, budgets, tmp, mixed) for f, d, s in cells for m in methods]
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for row in pool.imap_unordered(bbob_job, jobs):
                rows.append(row)
                where = f"f{row['fid']} d{row['dim']} s{row['seed']}"
                print(
                    f"  {row['method']} {where}: {row['best']} ({row['s']:.0f}s)", file=sys.stderr, flush=True
                )
    return bbob_table(rows, budgets, dims, methods)


def _bests(rows: list[dict[str, Any]], fid: int, dim: int, method: str, budget: int) -> list[float]:
    """The method's best f - f_opt after `budget` evaluations, one per seed, in seed order."""
    cell = sorted(
        (r["seed"], r["best"][budget])
        for r in rows
        if (r["fid"], r["dim"], r["method"]) == (fid, dim, method)
    )
    return [best for _, best in cell]


def against(ours: list[float], theirs: list[float]) -> str:
    """'+' where `ours` is lower than `theirs` by a two-sided Mann-Whitney U test at p < 0.05, '-'
    where higher, '' otherwise: a median behind CMA-ES's on 5 seeds is often a coin's toss, and
    the table says which rows are not."""
    from scipy.stats import mannwhitneyu

    if len(ours) < 2 or len(theirs) < 2 or len({*ours, *theirs}) == 1:
        return ""
    if mannwhitneyu(ours, theirs, alternative="two-sided").pvalue >= 0.05:
        return ""
    return "+" if statistics.median(ours) < statistics.median(theirs) else "-"


def bbob_table(
    rows: list[dict[str, Any]],
    budgets: tuple[int, ...],
    dims: tuple[int, ...],
    methods: tuple[str, ...] = METHODS,
) -> str:
    head = ["function", "d", "evals", *methods]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    same: dict[str, list[bool]] = {}
    better: dict[str, list[bool]] = {}
    tested: dict[str, list[str]] = {}
    for fid, name in FUNCTIONS.items():
        for dim in dims:
            for b in budgets:
                bests = {m: _bests(rows, fid, dim, m, b) for m in methods}
                med = {m: statistics.median(bests[m]) for m in methods}
                cma = med.get("optuna cmaes")
                sign = {
                    m: against(bests[m], bests["optuna cmaes"])
                    if cma is not None and m.startswith("metaexp")
                    else ""
                    for m in methods
                }
                cells = [f"{med[m]:.3g}{f' ({sign[m]})' if sign[m] else ''}" for m in methods]
                lines.append("| " + " | ".join([f"f{fid} {name}", str(dim), str(b), *cells]) + " |")
                if cma is None:
                    continue
                for m in methods:
                    if m.startswith("metaexp"):
                        same.setdefault(m, []).append(med[m] <= cma)
                        better.setdefault(m, []).append(med[m] <= 0.8 * cma)
                        tested.setdefault(m, []).append(sign[m])
    lines.append(
        "\nmedian over seeds of the best f - f_opt (lower is better); (+) / (-): lower / higher than"
    )
    lines.append(
        "CMA-ES alone by a two-sided Mann-Whitney U test over the seeds, p < 0.05. Rows against CMA-ES alone:"
    )
    for m in same:
        n = len(same[m])
        lines.append(
            f"  {m}: <= CMA-ES alone {sum(same[m])}/{n}, <= 0.8 x {sum(better[m])}/{n}; "
            f"significantly ahead {tested[m].count('+')}/{n}, behind {tested[m].count('-')}/{n}"
        )
    seeds = len({r["seed"] for r in rows})
    if same and seeds > TARGET_SEEDS:  # how likely the issue's targets (5-seed medians) are at all
        lines.append(
            f"chance that {TARGET_SEEDS}-seed medians meet every row ({TARGET_SEEDS} of {seeds} seeds drawn "
            f"per method and function, {DRAWS} draws): CMA-ES alone against itself "
            f"{chance_every_row(rows, budgets, dims, 'optuna cmaes', 1.0):.4f}"
        )
        for m in same:
            at = [chance_every_row(rows, budgets, dims, m, factor) for factor in (1.0, 0.8)]
            lines.append(f"  {m}: <= CMA-ES alone {at[0]:.4f}, <= 0.8 x {at[1]:.4f}")
    return "\n".join(lines)


TARGET_SEEDS = 5  # issue 13's BBOB targets are on 5-seed medians
DRAWS = 2000


def chance_every_row(
    rows: list[dict[str, Any]], budgets: tuple[int, ...], dims: tuple[int, ...], method: str, factor: float
) -> float:
    """The chance that `method`'s median over TARGET_SEEDS seeds is <= `factor` x CMA-ES alone's on
    every row, each method's seeds drawn TARGET_SEEDS at a time from the ones run (one draw per
    function and dimension, for all its budgets: a run's bests at 100 and 300 are one run's)."""
    import random

    rng = random.Random(0)
    pair = ("optuna cmaes", method)
    cells = [  # per function and dimension: per budget, each method's bests in seed order
        [{m: _bests(rows, fid, dim, m, b) for m in pair} for b in budgets]
        for fid in FUNCTIONS
        for dim in dims
    ]
    hits = 0
    for _ in range(DRAWS):
        every = True
        for cell in cells:  # a draw per side: CMA-ES against itself draws twice
            drawn = [(m, rng.sample(range(len(cell[0][m])), TARGET_SEEDS)) for m in (method, pair[0])]
            for bests in cell:
                ours, theirs = (statistics.median(bests[m][i] for i in seeds) for m, seeds in drawn)
                every = every and ours <= factor * theirs
        hits += every
    return hits / DRAWS


# --------------------------------------------------------------------------- landscapes


def landscapes(
    seeds: int,
    budgets: tuple[int, ...],
    workers: int,
    names: tuple[str, ...],
    operators: tuple[str, ...] = tuple(LANDSCAPE_OPERATORS),
    nk_seed: int | None = None,
) -> str:
    """A `metaexp study` per landscape, budget and operator: the landscape's own (perturb) under
    every shipped strategy, and params with a sampler under the strategies LANDSCAPE_OPERATORS
    names. `nk_seed`: NK with other tables (a held-out landscape; its optimum found by enumeration)."""
    import ray

    from metaexp.study import format_table, run_study

    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False
    )
    out = []
    with tempfile.TemporaryDirectory(prefix="search-quality-land-") as tmp:
        demo = Path(tmp) / "demo"
        init = [sys.executable, "-m", "metaexp", "init", "--example", "landscapes", str(demo)]
        subprocess.run(init, check=True, capture_output=True)
        target = _held_out_nk(demo, nk_seed) if nk_seed is not None else None
        for name in names:
            spec = yaml.safe_load((demo / f"{name}.yaml").read_text())
            if name == "nk" and target is not None:
                spec["budget"]["target"] = target
            for budget in budgets:
                for operator in operators:
                    sampler, strategies = LANDSCAPE_OPERATORS[operator]
                    run_spec = spec
                    if sampler is not None:  # params' own default style (the sampler's suggestion whole)
                        space = spec["operator"]["space"]
                        params = {"kind": "params", "space": space, "sampler": sampler}
                        # its own tag: a study resumes the runs of its tag, strategy and seed
                        run_spec = {**spec, "operator": params, "tag": f"{spec['tag']}-{sampler}"}
                    t0 = time.monotonic()
                    where = demo / f"out-{name}-{budget}-{operator}"
                    result = run_study(
                        run_spec, strategies, seeds, budget, where, io.StringIO(), root=demo, parallel=workers
                    )
                    took = time.monotonic() - t0
                    held = f" (NK_SEED {nk_seed}, optimum {target})" if name == "nk" and target else ""
                    table = format_table(result.summary)
                    out.append(f"{name}{held}, budget {budget}, operator {operator} ({took:.0f}s):\n{table}")
                    print(out[-1], file=sys.stderr, flush=True)
    return "\n\n".join(out)


def _held_out_nk(demo: Path, nk_seed: int) -> int:
    """Rewrite the demo's NK harness to other tables (the same N and K); its optimum, enumerated."""
    harness = demo / "evaluate.py"
    text = harness.read_text()
    if "NK_SEED = 1\n" not in text:
        raise SystemExit(f"--nk-seed: {harness} no longer sets NK_SEED = 1")
    harness.write_text(text.replace("NK_SEED = 1\n", f"NK_SEED = {nk_seed}\n"))
    subprocess.run(["git", "commit", "-qam", f"NK_SEED {nk_seed}"], cwd=demo, check=True)
    enumerate_all = [sys.executable, "evaluate.py", "nk", "--optimum"]
    found = subprocess.run(enumerate_all, cwd=demo, check=True, capture_output=True, text=True)
    return int(found.stdout.split()[2])


BINPACK_METHODS = {  # offline operators: (operator, strategy)
    "perturb + islands": (
        {"kind": "perturb", "style": {"conservative": 0.7, "bold": 0.3}},
        "strategies/islands.yaml",
    ),
    "params tpe": ({"kind": "params", "sampler": "tpe", "style": "global"}, "strategies/hill_climb.yaml"),
    "params cmaes + restarts": (
        {"kind": "params", "sampler": "cmaes", "style": "global"},
        "strategies/restarts.yaml",
    ),
    "memetic (hybrid, llm: null)": (
        {"kind": "hybrid", "llm": None, "tune": {"sampler": "cmaes", "budget": 8}, "sampler": "tpe"},
        "strategies/hill_climb.yaml",
    ),
}
BINPACK_TARGET = 4.0  # excess bins %, best fit 4.75


def binpack_job(job: tuple[str, int, int]) -> dict[str, Any]:
    """One offline run of the binpack example: its best excess bins after `evals` evaluations."""
    import shutil

    from metaexp.run import run
    from metaexp.spec import load_spec

    method, seed, evals = job
    operator, strategy = BINPACK_METHODS[method]
    with tempfile.TemporaryDirectory(prefix="search-quality-binpack-") as tmp:
        repo, src = Path(tmp), ROOT / "harnesses" / "binpack"
        shutil.copy(src / "priority.py", repo / "priority.py")
        harness = (src / "evaluate.py").read_text().replace("REPEATS = 3", "REPEATS = 1")  # timing only
        (repo / "evaluate.py").write_text(harness)
        shutil.copy(ROOT / "search_spaces" / "binpack.yaml", repo / "space.yaml")
        spec = {
            "tag": "binpack",
            "target": ["priority.py"],
            "harness": {"command": "python evaluate.py", "immutable": ["evaluate.py"], "timeout_s": 60},
            "metrics": {"excess_bins": {"direction": "minimize"}},
            "objective": {"primary": "excess_bins"},
            "operator": {**operator, "space": "space.yaml"},
            "strategy": strategy,
            "budget": {"max_experiments": None, "max_evaluations": evals, "max_invalid_streak": 50},
            "seed": seed,
        }
        (repo / "metaexp.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        git = ["git", "-c", "user.name=b", "-c", "user.email=b@b", "-c", "commit.gpgsign=false"]
        for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "start"]):
            subprocess.run([*git, *argv], cwd=repo, check=True)
        result = run(load_spec(repo / "metaexp.yaml"), out=io.StringIO(), scheduler="serial")
    best = result.tally.best.value if result.tally.best else None
    print(f"  binpack {method} seed {seed}: {best}", file=sys.stderr, flush=True)
    return {"method": method, "seed": seed, "best": best}


def binpack(seeds: int, workers: int, evals: int) -> str:
    jobs = [(m, s, evals) for m in BINPACK_METHODS for s in range(seeds)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        rows = pool.map(binpack_job, jobs)
    what = f"{evals} evaluations, {seeds} seeds (excess bins %, best fit 4.75; target <= {BINPACK_TARGET})"
    lines = [f"binpack, {what}"]
    lines += ["method | median best (min..max) | seeds <= target", "--- | --- | ---"]
    for method in BINPACK_METHODS:
        bests = [r["best"] for r in rows if r["method"] == method and r["best"] is not None]
        hit = sum(b <= BINPACK_TARGET for b in bests)
        lines.append(
            f"{method} | {statistics.median(bests):.3f} ({min(bests):.3f}..{max(bests):.3f}) | {hit}/{seeds}"
        )
    return "\n".join(lines)


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--parts", default="bbob,landscapes")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--methods", default=",".join(METHODS), help=f"bbob: which methods ({', '.join(METHODS)})"
    )
    parser.add_argument(
        "--mixed", action="store_true", help="bbob: two categoricals beside the numbers (SHIFT of x, LEVEL)"
    )
    parser.add_argument("--dims", default="5,10", help="bbob: the dimensions")
    parser.add_argument("--landscape-seeds", type=int, default=20)
    parser.add_argument("--crash-seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--landscape-budgets", default="60,200")
    parser.add_argument("--landscapes", default="deceptive,nk", help="which landscapes (deceptive, nk)")
    parser.add_argument(
        "--landscape-operators",
        default=",".join(LANDSCAPE_OPERATORS),
        help="landscapes: which operators (perturb: the landscape's own under every strategy; random, "
        "tpe, surrogate: params with that sampler)",
    )
    parser.add_argument("--nk-seed", type=int, default=None, help="nk: a held-out landscape (NK_SEED)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="that it runs: bbob 1 seed, 20 evaluations, d = 5 (every sampler and strategy once); the "
        "deceptive trap, 1 seed, 12 evaluations, params + surrogate; crashes, 1 seed, 12 evaluations",
    )
    args = parser.parse_args()
    budgets, dims = BUDGETS, tuple(int(d) for d in args.dims.split(","))
    land = tuple(int(b) for b in args.landscape_budgets.split(","))
    operators = tuple(args.landscape_operators.split(","))
    unknown = [o for o in operators if o not in LANDSCAPE_OPERATORS]
    if unknown:
        known = ", ".join(LANDSCAPE_OPERATORS)
        parser.error(f"--landscape-operators: unknown {unknown[0]!r} (one of {known})")
    methods = tuple(args.methods.split(","))
    unknown_methods = [m for m in methods if m not in METHODS]
    if unknown_methods:
        parser.error(f"--methods: unknown {unknown_methods[0]!r} (one of {', '.join(METHODS)})")
    if args.nk_seed is not None and "nk" not in args.landscapes.split(","):
        parser.error("--nk-seed: only with nk among --landscapes")
    if args.smoke:
        args.parts, args.seeds, args.workers, budgets, dims = "bbob,landscapes,crashes", 1, 1, (10, 20), (5,)
        args.crash_seeds = 1
        skip = (
            "optuna random",
            "optuna cmaes+tpe",
            "metaexp lq-restarts",
            "metaexp lq-islands",
            "metaexp memetic tpe",
        )
        skip += ("metaexp memetic cmaes global",)
        methods = tuple(m for m in methods if m not in skip)
        args.landscape_seeds, land, args.landscapes, operators = 1, (12,), "deceptive", ("surrogate",)
    parts = args.parts.split(",")
    if "bbob" in parts:
        print(bbob(args.seeds, args.workers, budgets, dims, methods, args.mixed), flush=True)
    if "landscapes" in parts:
        names = tuple(args.landscapes.split(","))
        table = landscapes(args.landscape_seeds, land, args.workers, names, operators, args.nk_seed)
        print(table, flush=True)
    if "binpack" in parts:
        print(binpack(args.seeds, args.workers, 12 if args.smoke else 200), flush=True)
    if "crashes" in parts:
        print(crashes(args.crash_seeds, args.workers, 12 if args.smoke else None), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
