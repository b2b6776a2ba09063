"""Helpers several test packages share: population runs, a two-metric harness, a noisy harness."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from conftest import ROOT, Project, git

from metaexp.record.refs import population_refs
from metaexp.run import RunResult, run
from metaexp.spec import Spec, load_spec

POPULATION = {
    "islands": 2,
    "population": 2,
    "migration": {"every": 3, "count": 1},
    "escape": {"patience": 3, "action": "bold_mutation"},
    "crossover_rate": 0.2,
}
RAY = {"max_concurrent_evals": 2, "eval_resources": {"num_cpus": 0.5}}


def run_population(project: Project, **overrides: Any) -> RunResult:
    settings = {"strategy": POPULATION, "ray": RAY, **overrides}
    return run(load_spec(project.spec(**settings)), out=io.StringIO())


def check_population(project: Project) -> list[Any]:
    records = project.assert_consistent()
    spec = load_spec(project.root / "metaexp.yaml")
    for ref, sha in population_refs(spec, records).items():
        assert git(project.root, "rev-parse", ref).strip() == sha, ref
    assert not git(project.root, "branch", "--list", "autoexp/landscape").strip()  # no bare branch
    return records


# --- comparing the records of two runs

TIMING = ("timestamp", "wall_time_s", "harness_s")  # differ between any two runs of one spec
TIMING_EXTRA = ("latency_s", "node")


def comparable(rec: Any, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A record as two runs of one spec must agree on it: no timing, no node, nor the fields in `drop`."""
    data = {k: v for k, v in rec.__dict__.items() if k not in (*TIMING, *drop)}
    data["extra"] = {k: v for k, v in rec.extra.items() if k not in TIMING_EXTRA}
    return data


# --- faults

WORKER_KILLER = """import os, signal, sys
marker = os.environ['MARKER']
hit = (os.environ['METAEXP_EXPERIMENT'] == os.environ['TARGET']) != bool(os.environ.get('ALL_BUT'))
if os.path.exists(marker) and hit:
    supervisor = os.getppid()
    worker = int(open(f'/proc/{supervisor}/stat').read().rsplit(')', 1)[1].split()[1])
    if os.environ.get('ONCE'):
        os.unlink(marker)
    os.kill(worker, signal.SIGKILL)  # the Ray worker that runs this evaluation, as an OOM kill would
exec(open('evaluate.py').read())
"""


def worker_killer(project: Project, target: str, once: bool, all_but: bool = False) -> dict[str, Any]:
    """A harness that SIGKILLs the process running its evaluation (its supervisor's parent: a Ray
    worker) when METAEXP_EXPERIMENT is `target` (`all_but`: when it is not), while
    project.root.parent/kill-the-worker exists (`once`: it removes that file, so the evaluation's
    next try runs)."""
    marker = project.root.parent / "kill-the-worker"
    marker.touch()
    project.write("killer.py", WORKER_KILLER)
    env = {"MARKER": str(marker), "TARGET": target, **({"ONCE": "1"} if once else {})}
    env.update({"ALL_BUT": "1"} if all_but else {})
    harness = {"command": "python killer.py", "immutable": ["evaluate.py", "killer.py"], "env": env}
    return {**harness, "sandbox": "off"}  # a fault from outside: the sandbox would hide the worker


# --- two metrics: loss (the landscape's) and width (params.WIDTH, maximised)

TWO = {"loss": {"direction": "minimize"}, "width": {"direction": "maximize", "pattern": r"width:\s*(\S+)"}}
TWO_HARNESS = {"command": "python two.py", "immutable": ["evaluate.py", "two.py"]}


def two_metrics(project: Project) -> None:
    project.write(
        "two.py", "import params\nprint('width:', params.WIDTH)\nexec(open('evaluate.py').read())\n"
    )


# --- a noisy harness: the landscape's loss plus Gaussian noise seeded by METAEXP_SEED

NOISY = (
    "import os, random\n"
    "src = open('params.py').read()\n"
    "vals = {l.split('=')[0].strip(): float(l.split('=')[1].split('#')[0]) for l in src.splitlines()\n"
    "        if '=' in l and not l.startswith('#')}\n"
    "true = (vals['X'] - 1.5) ** 2 + (vals['Y'] + 0.5) ** 2 + 0.1 * (vals['WIDTH'] - 12) ** 2\n"
    "noise = random.Random(int(os.environ['METAEXP_SEED'])).gauss(0, 0.3)\n"
    "print('loss:', true + noise)\n"
)
NOISY_HARNESS = {"command": "python noisy.py", "immutable": ["evaluate.py", "noisy.py"]}

PICKY = """\
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("params", os.path.join(os.getcwd(), "params.py"))
params = importlib.util.module_from_spec(spec)
spec.loader.exec_module(params)
if (params.X, params.Y, params.WIDTH) != (3.0, -2.0, 7):
    sys.exit("diverged")  # every change crashes; the start runs
print("---")
print("loss: 1.0")
"""
PICKY_HARNESS = {"command": "python picky.py", "immutable": ["evaluate.py", "picky.py"]}  # writes PICKY first


# --- the dashboard as a user starts it


def start_dashboard(cwd: Path, *args: str) -> tuple[subprocess.Popen[str], str, str]:
    """`metaexp dashboard ARGS --port 0`; returns the process, the base URL it printed and its output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "metaexp", "dashboard", *args, "--host", "127.0.0.1", "--port", "0"],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    printed = ""
    while "listening at" not in printed:  # a hang is caught by the test's timeout
        line = proc.stdout.readline()
        if not line:
            break
        printed += line
    match = re.search(r"listening at (http://\S+/dashboard)", printed)
    if match is None:
        proc.kill()
        raise AssertionError(f"the dashboard did not start:\n{printed}{proc.stdout.read()}")
    return proc, match.group(1), printed


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.load(resp)


# --- a rule-based "model" for the landscape, served by tests/fake_openai.py


LANDSCAPE_LINE = re.compile(r"^(X|Y|WIDTH) = ([-+0-9.eE]+)(.*)$", re.MULTILINE)


def landscape_model(request: dict[str, Any]) -> str:
    """A reply that moves one of params.py's constants, chosen from a hash of the whole request: the
    same prompt gets the same edit, so two runs that ask the same things get the same answers."""
    import hashlib

    prompt = "\n".join(str(m.get("content", "")) for m in request.get("messages", []))
    h = int(hashlib.sha256(prompt.encode()).hexdigest()[:12], 16)
    lines = {m.group(1): m for m in LANDSCAPE_LINE.finditer(prompt)}
    if not lines:
        return "Hypothesis: nothing to change\n"  # e.g. a notes request: any text will do
    name = sorted(lines)[h % len(lines)]
    match = lines[name]
    step = (h >> 8) % 9 - 4 or 1
    value = int(match.group(2)) + step if name == "WIDTH" else round(float(match.group(2)) + step / 4, 2)
    old, new = match.group(0), f"{name} = {value}{match.group(3)}"
    edit = f"params.py\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n"
    return f"Hypothesis: move {name} by {step}\n{edit}"


def ratchet(
    op: Any,
    files: dict[str, bytes],
    metric: str,
    score: Any,
    steps: int,
    seed: int = 0,
    maximize: bool = False,
    target: float | None = None,
) -> list[Any]:
    """The hill-climbing ratchet in memory: `op` proposes from the kept point, `score(files)` is the
    harness, each record is told back to `op`; stops after `steps` proposals or at `target`. The
    records, the baseline first (`op` was made from that one-record history)."""
    from metaexp.operators import LineageState, experiment_rng
    from metaexp.record.records import ExperimentRecord, Status

    value = score(files)
    history = [ExperimentRecord(1, "c1", None, "", Status.KEEP, "baseline", {metric: value}, value)]
    state = LineageState("c1", files, {metric: value}, value)
    for n in range(2, steps + 2):
        cand = op.propose(state, n, experiment_rng(seed, n))
        tried = {**state.files, **cand.files}
        got = score(tried)
        better = got > state.value if maximize else got < state.value
        status = Status.KEEP if better else Status.DISCARD
        rec = ExperimentRecord(
            n, f"c{n}", state.commit, "", status, cand.description, {metric: got}, got,
            params=cand.params, extra=cand.extra, generation=n - 2,
        )  # fmt: skip
        history.append(rec)
        op.observe(rec)
        if status is Status.KEEP:
            state = LineageState(f"c{n}", tried, {metric: got}, got)
        if target is not None and (got >= target if maximize else got <= target):
            break
    return history


def landscape_spec(operator: dict[str, Any], seed: int = 0) -> Spec:
    """A spec of the landscape example's target (params.py, loss minimised) with this operator."""
    return Spec.model_validate(
        {
            "tag": "t",
            "target": ["params.py"],
            "harness": {"command": "python evaluate.py"},
            "metrics": {"loss": {}},
            "objective": {"primary": "loss"},
            "operator": operator,
            "seed": seed,
        }
    )


# --- the landscape example's harness with one more line before its metrics


def landscape_with(line: str) -> str:
    """harnesses/landscape/evaluate.py with `line` (indented as the loss is computed) run just before
    it prints its metrics: e.g. a penalty the outer study chooses through harness.env."""
    source = (ROOT / "harnesses" / "landscape" / "evaluate.py").read_text()
    marker = '    print("---")\n'
    assert marker in source, "the landscape harness no longer prints its metrics after ---"
    return source.replace(marker, f"    {line}\n{marker}")


# --- meta studies over the landscape example (tests/meta)

STRATEGY_SPACE = {  # an outer study's search space over the landscape's strategy
    "strategy.explore_rate": {"type": "float", "low": 0.0, "high": 0.3},
    "operator.style": {"type": "categorical", "choices": ["conservative", "bold"]},
}
# The landscape plus a penalty the outer study chooses (harness.env.PENALTY): a known weak strategy.
PENALISED = landscape_with('loss += float(os.environ.get("PENALTY", "0"))')


def meta_project(
    make_project: Any, space: dict[str, Any], budget: int = 6, **meta: Any
) -> tuple[Project, Path]:
    """A landscape project whose spec has a meta block over `space` (written to strategy.yaml) and
    `budget` inner experiments; re-evaluation on fresh seeds is off unless `meta` turns it on."""
    project = make_project("repo")
    (project.root / "strategy.yaml").write_text(yaml.safe_dump(space))
    meta = {"reevaluate": 0, **meta}
    path = project.spec(budget={"max_experiments": budget}, meta={"space": "strategy.yaml", **meta})
    return project, path


def best_so_far(project: Project, tag: str) -> list[float]:
    """An inner run's best value (minimised) after each of its harness runs, read from its ledger."""
    best, curve = float("inf"), []
    for rec in project.records(tag):
        if not rec.status.harness_ran:
            continue
        if rec.status.accepted and rec.value is not None:
            best = min(best, rec.value)
        curve.append(best)
    return curve
