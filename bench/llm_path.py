"""The LLM path at equal evaluations: what a model's repeats and broken edits cost, side by side.

    python bench/llm_path.py [--seeds 5] [--evals 100] [--workers 2] [--problems landscape,rastrigin,binpack]
    python bench/llm_path.py --smoke        # seconds: one seed, 12 evaluations, the landscape

Every run is a real `metaexp` loop (git, sandboxed harness subprocesses, the ledger) in a fresh
temporary repository, `budget.max_evaluations` its only budget (tuning runs count), and the
operator talks to a SIMULATED MODEL (not a model) over HTTP with the real `openai` client. Its
proposals follow a known distribution, drawn per request from a seeded RNG:

* 7 %: a repeat: the reply it gave before to the same file (when there is one), so the edit
  recreates files already evaluated;
* 8 %: a broken edit: one constant's line loses its closing syntax (`X = (1.5`): Python that does
  not parse;
* otherwise one or two UPPER_CASE numeric constants of the target moved by a log-normal factor
  (sigma 0.5; an int at least one step; a zero by a normal step).

A retry (the operator telling the model its edit was a repeat or did not parse) gets a fresh draw
from the same distribution. Problems: the landscape example (harnesses/landscape), a shifted
Rastrigin function in 5 dimensions (multimodal, optimum 0, start f = 55), and the binpack example
(harnesses/binpack, excess bins, best fit 4.75). Methods: llm + hill_climb, llm + islands (the
islands preset), hybrid (llm 0.3 of the evaluations, CMA-ES tuning budget 8), and perturb +
islands, the best offline operator of the issue's study.

Figures per (problem, method): the median best over seeds, the evaluations spent on repeats
(harness runs whose target files equal an earlier run's) and on broken edits (runs of files that
do not parse), and what the loop caught before any run (duplicates, parse failures) and the
retries that cost. Targets: 0 % of the evaluations on repeats and 0 % on syntax errors.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import multiprocessing
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "harnesses" / "binpack"))

from stand_in import serve  # noqa: E402  the OpenAI-compatible endpoint the binpack stand-in uses

from metaexp.candidate import fingerprint, malformed  # noqa: E402
from metaexp.record.records import read_records  # noqa: E402
from metaexp.run import run  # noqa: E402
from metaexp.spec import load_spec  # noqa: E402

REPEAT, BROKEN, SIGMA = 0.07, 0.08, 0.5
METHODS = ("llm + hill_climb", "llm + islands", "hybrid", "perturb + islands")
CONSTANT = re.compile(r"^([A-Z][A-Z0-9_]*) = (-?[0-9][0-9.eE+-]*)(.*)$", re.M)
RETRY = "That edit could not be used"

SHIFT = (0.5, -1.2, 0.8, 1.5, -0.3)
RASTRIGIN_TARGET = "".join(f"X{i} = 3.0  # coordinate {i}\n" for i in range(5))
RASTRIGIN_HARNESS = f"""import math, re
text = open("rastrigin.py").read()
x = [float(v) for v in re.findall(r"^X\\d = (\\S+)", text, re.M)]
shift = {SHIFT!r}
f = 10 * len(x) + sum((a - s) ** 2 - 10 * math.cos(2 * math.pi * (a - s)) for a, s in zip(x, shift))
print("f:", round(f, 6))
"""
RASTRIGIN_SPACE = {f"X{i}": {"type": "float", "low": -5.0, "high": 5.0} for i in range(5)}


class SimulatedModel:
    """The proposal distribution above, for one run (seeded)."""

    def __init__(self, path: str, seed: int) -> None:
        self.path, self.rng = path, random.Random(f"llm-path:{seed}")
        self.replies: dict[str, list[str]] = {}  # the file's hash -> the replies given for it
        self.prompt = ""

    def reply(self, last: str) -> str:
        """The answer to a request whose last message is `last` (a retry's is the operator's reason:
        the file is in the prompt before it, the one this model answered last)."""
        retry = last.startswith(RETRY)
        prompt = self.prompt if retry else last
        self.prompt = prompt
        if "# Target files" not in prompt:
            return "No notes."
        text = self._file(prompt)
        state = hashlib.sha256(text.encode()).hexdigest()
        earlier = self.replies.setdefault(state, [])
        u = self.rng.random()
        if u < REPEAT and earlier and not retry:
            return self.rng.choice(earlier)
        constants = CONSTANT.findall(text)
        if u < REPEAT + BROKEN:
            name, value, rest = self.rng.choice(constants)
            return self._format([(f"{name} = {value}{rest}", f"{name} = ({value}{rest}")], f"{name} again")
        moves = [
            self._move(c) for c in self.rng.sample(constants, min(len(constants), self.rng.choice((1, 2))))
        ]
        reply = self._format(moves, ", ".join(m[1].split(" = ")[0] + " moved" for m in moves))
        earlier.append(reply)
        return reply

    def _file(self, prompt: str) -> str:
        start = prompt.index(f"`{self.path}`:\n```\n") + len(self.path) + 7
        return prompt[start : prompt.index("\n```", start)] + "\n"

    def _move(self, constant: tuple[str, str, str]) -> tuple[str, str]:
        name, raw, rest = constant
        is_int = re.fullmatch(r"-?\d+", raw) is not None
        value = float(raw)
        step = self.rng.gauss(0, SIGMA)
        new = step if value == 0 else value * math.exp(step)
        if is_int:
            step = round(new) - int(value)
            text = str(int(value) + (step or self.rng.choice((-1, 1))))
        else:
            text = f"{new:.4g}"
        return f"{name} = {raw}{rest}", f"{name} = {text}{rest}"

    def _format(self, changes: list[tuple[str, str]], hypothesis: str) -> str:
        blocks = "".join(
            f"{self.path}\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n" for old, new in changes
        )
        return f"Hypothesis: {hypothesis}\n{blocks}"


def write_problem(repo: Path, problem: str) -> tuple[str, str, str]:
    """The problem's files in `repo`; (target, harness command, metric)."""
    if problem == "landscape":
        src = ROOT / "harnesses" / "landscape"
        for name in ("params.py", "evaluate.py"):
            shutil.copy(src / name, repo / name)
        shutil.copy(ROOT / "search_spaces" / "landscape.yaml", repo / "space.yaml")
        return "params.py", "python evaluate.py", "loss"
    if problem == "binpack":
        src = ROOT / "harnesses" / "binpack"
        shutil.copy(src / "priority.py", repo / "priority.py")
        harness = (src / "evaluate.py").read_text().replace("REPEATS = 3", "REPEATS = 1")  # timing only
        (repo / "evaluate.py").write_text(harness)
        shutil.copy(ROOT / "search_spaces" / "binpack.yaml", repo / "space.yaml")
        return "priority.py", "python evaluate.py", "excess_bins"
    (repo / "rastrigin.py").write_text(RASTRIGIN_TARGET)
    (repo / "evaluate.py").write_text(RASTRIGIN_HARNESS)
    (repo / "space.yaml").write_text(yaml.safe_dump(RASTRIGIN_SPACE))
    return "rastrigin.py", "python evaluate.py", "f"


def operator_and_strategy(method: str, url: str) -> tuple[dict[str, Any], Any]:
    llm = {"model": "simulated", "base_url": url, "notes_every": None, "timeout_s": 30, "max_retries": 0}
    islands = "strategies/islands.yaml"
    if method == "llm + hill_climb":
        return {"kind": "llm", **llm}, "strategies/hill_climb.yaml"
    if method == "llm + islands":
        return {"kind": "llm", **llm}, islands
    if method == "hybrid":
        tune = {"sampler": "cmaes", "budget": 8}
        hybrid = {"kind": "hybrid", "space": "space.yaml", "llm": llm, "tune": tune}
        return {**hybrid, "schedule": {"llm": 0.3, "params": 0.7}}, "strategies/hill_climb.yaml"
    return {"kind": "perturb", "space": "space.yaml", "style": {"conservative": 0.7, "bold": 0.3}}, islands


def one_run(job: tuple[str, str, int, int]) -> dict[str, Any]:
    problem, method, seed, evals = job
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        target, command, metric = write_problem(repo, problem)
        git = ["git", "-c", "user.name=b", "-c", "user.email=b@b", "-c", "commit.gpgsign=false"]
        for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "start"]):
            subprocess.run([*git, *argv], cwd=repo, check=True)
        with serve(SimulatedModel(target, seed)) as url:  # type: ignore[arg-type]
            operator, strategy = operator_and_strategy(method, url)
            spec = {
                "tag": "bench",
                "target": [target],
                "harness": {"command": command, "immutable": ["evaluate.py"], "timeout_s": 60},
                "metrics": {metric: {"direction": "minimize"}},
                "objective": {"primary": metric},
                "operator": operator,
                "strategy": strategy,
                "budget": {"max_experiments": None, "max_evaluations": evals, "max_invalid_streak": 50},
                "seed": seed,
            }
            (repo / "metaexp.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
            result = run(load_spec(repo / "metaexp.yaml"), out=io.StringIO(), scheduler="serial")
        records = read_records(repo / ".metaexp" / "bench" / "experiments.jsonl")
        runs = _evaluated_trees(repo, records, target)
        retries = sum(_retries(p) for p in (repo / ".metaexp" / "bench").glob("**/llm.jsonl"))  # islands: own
    seen: set[str] = set()
    repeats = broken = 0
    for tree, count in runs:
        identity = fingerprint(tree)
        repeats += count if identity in seen else 0  # a first tuning: its runs differ in their values
        seen.add(identity)
        broken += count if malformed(tree) else 0
    evaluations = sum(count for _, count in runs)
    best = result.tally.best.value if result.tally.best else None
    reasons = [r.reason for r in records if not r.status.harness_ran]
    return {
        "problem": problem,
        "method": method,
        "seed": seed,
        "best": best,
        "evaluations": evaluations,
        "repeats": max(0, repeats),
        "broken": broken,
        "caught_duplicates": sum(r.startswith(("duplicate", "near-duplicate")) for r in reasons),
        "caught_broken": sum("does not parse" in r for r in reasons),
        "retries": retries,
    }


def _evaluated_trees(repo: Path, records: list[Any], target: str) -> list[tuple[dict[str, bytes], int]]:
    """Each harness-run record's target file as evaluated (a tuned record: its proposed files, its
    runs), with how many harness runs it took."""
    out = []
    for rec in records:
        if not rec.status.harness_ran or not rec.commit:
            continue
        shown = subprocess.run(
            ["git", "show", f"{rec.commit}:{target}"], cwd=repo, capture_output=True, check=False
        ).stdout
        out.append(({target: shown}, max(1, len(rec.extra.get("runs", [])))))
    return out


def _retries(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(json.loads(line).get("purpose") == "retry" for line in path.read_text().splitlines())


def _share(rows: list[dict[str, Any]], key: str) -> str:
    return f"{100 * sum(r[key] for r in rows) / max(1, sum(r['evaluations'] for r in rows)):.1f} %"


def table(rows: list[dict[str, Any]], problems: list[str]) -> str:
    head = ["problem", "method", "median best (min..max)", "evals", "on repeats", "on broken"]
    head += ["caught dup/broken", "retries"]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for problem in problems:
        for method in METHODS:
            mine = [r for r in rows if r["problem"] == problem and r["method"] == method]
            if not mine:
                continue
            bests = [r["best"] for r in mine if r["best"] is not None]
            best = f"{statistics.median(bests):.4g} ({min(bests):.4g}..{max(bests):.4g})" if bests else "-"
            caught = f"{sum(r['caught_duplicates'] for r in mine)}/{sum(r['caught_broken'] for r in mine)}"
            evals = str(sum(r["evaluations"] for r in mine))
            cells = [problem, method, best, evals, _share(mine, "repeats"), _share(mine, "broken"), caught]
            lines.append(" | ".join([*cells, str(sum(r["retries"] for r in mine))]))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--evals", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--problems", default="landscape,rastrigin,binpack")
    parser.add_argument("--smoke", action="store_true", help="one seed, 12 evaluations, the landscape")
    parser.add_argument("--out", help="also write every run's figures as JSON here")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.evals, args.problems, args.workers = 1, 12, "landscape", 1
    problems = args.problems.split(",")
    jobs = [(p, m, s, args.evals) for p in problems for m in METHODS for s in range(args.seeds)]
    print(f"{len(jobs)} runs of {args.evals} evaluations on {args.workers} worker(s) ...", file=sys.stderr)
    rows = []
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for row in pool.imap_unordered(one_run, jobs):
            rows.append(row)
            print(
                f"  {row['problem']} {row['method']} seed {row['seed']}: best {row['best']}", file=sys.stderr
            )
    print(
        f"simulated model: repeats {REPEAT:.0%}, broken edits {BROKEN:.0%}, otherwise one or two constants "
        f"moved by a log-normal factor (sigma {SIGMA}); {args.seeds} seeds, {args.evals} evaluations each"
    )
    print(table(rows, problems))
    spent = sum(r["repeats"] + r["broken"] for r in rows if r["method"] != "perturb + islands")
    print(f"evaluations spent on repeats or broken edits by the llm methods: {spent} (target 0)")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
