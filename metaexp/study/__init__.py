"""Escaping-local-optima studies: every strategy on every seed under one budget, then how often
each reached the spec's known optimum (`budget.target`), how fast, and their best-so-far curves.

Each (strategy, seed) is an ordinary run with its own tag `<tag>-<strategy>-s<seed>` in the
spec's project and storage, so its records, branches and Optuna study are those of any run, and
a study that is run again skips the runs its ledgers show finished and resumes the others.

Evaluations are the records whose harness ran (the baseline is the first; migrants and
proposals that never ran are not evaluations). A run reaches the target at its first
evaluation whose value is at least as good as `budget.target`. A run that never does is
right-censored at its evaluations: it needed more than the budget. The median evaluations to
target is the smallest count by which half the runs had reached it; with fewer than half
successful it lies beyond the budget and is reported as such (null in the JSON).
"""

from __future__ import annotations

import io
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from metaexp.decide.objectives import Objective
from metaexp.errors import MetaexpError, SpecError
from metaexp.record.records import ExperimentRecord, read_records
from metaexp.resources import data_dir, resolve_data_file
from metaexp.run.loop import Tally, budget_stop
from metaexp.spec import Spec, format_validation_error, load_spec

__all__ = ["RunSummary", "StudyResult", "plan_runs", "run_study", "summarize_run", "wilson"]

DEFAULT_STRATEGIES = ("hill_climb", "explore_exploit", "islands", "pbt")
WILSON_Z = 1.959964  # two-sided 95% normal quantile
DPI = 120  # plot resolution, dots per inch
FIGSIZE = (10.0, 6.0)  # plot size, inches


@dataclass(frozen=True)
class PlannedRun:
    strategy: str
    seed: int
    spec: Spec


@dataclass(frozen=True)
class RunSummary:
    """What one run achieved, read from its records."""

    tag: str
    strategy: str
    seed: int
    reached: bool
    evals_to_target: int | None  # the evaluation that first reached the target (1 = the baseline)
    evaluations: int
    best: float | None
    stop: str  # why the run stopped, from its records ("" if it has not finished)
    curve: list[float | None]  # best value so far after each evaluation


@dataclass
class StudyResult:
    summary: dict[str, Any]
    runs: list[RunSummary] = field(default_factory=list)
    interrupted: bool = False
    out: Path | None = None

    @property
    def unfinished(self) -> int:
        return sum(1 for s in self.runs if not s.stop)


# ---------------------------------------------------------------------------
# Planning: one spec per (strategy, seed)


def plan_runs(
    spec_path: str | Path, strategies: Sequence[str], seeds: int, budget: int | None = None
) -> tuple[Spec, list[PlannedRun]]:
    """The base spec and every run, validated before anything starts."""
    path = Path(spec_path)
    base = load_spec(path)
    if base.budget.target is None:
        raise SpecError(
            f"{path}: budget.target: a study needs the known optimum as budget.target "
            "(the value that counts as reaching the global optimum)"
        )
    if base.objective.mode == "pareto":
        raise SpecError(f"{path}: objective.mode pareto has no single target to reach; a study needs one")
    if seeds < 1:
        raise SpecError(f"--seeds: at least 1 (got {seeds})")
    if not strategies:
        raise SpecError("--strategies: name at least one strategy, e.g. hill_climb islands")
    data = yaml.safe_load(path.read_text())
    presets = {}
    for name in strategies:
        label, preset = resolve_strategy(name, path.parent)
        if label in presets:
            raise SpecError(f"--strategies: {name!r} is given twice")
        presets[label] = preset
    runs = []
    for label, preset in presets.items():
        for seed in range(base.seed, base.seed + seeds):
            run = {**data, "tag": f"{base.tag}-{label}-s{seed}", "seed": seed}
            run["strategy"] = {"name": label, **preset}
            if budget is not None:
                run["budget"] = {**(data.get("budget") or {}), "max_experiments": budget}
            run["root"] = path.parent.resolve()
            try:
                runs.append(PlannedRun(label, seed, Spec.model_validate(run)))
            except ValidationError as exc:
                message = format_validation_error(path, exc)
                raise SpecError(f"strategy {label!r}, seed {seed}: {message}") from None
    return base, runs


def resolve_strategy(name: str, base: Path) -> tuple[str, dict[str, Any]]:
    """A preset name (hill_climb) or a strategy YAML, found in the project first, then shipped."""
    ref = name if name.endswith((".yaml", ".yml")) else f"strategies/{name}.yaml"
    found = resolve_data_file(ref, base)
    if found is None:
        known = sorted({p.stem for p in data_dir("strategies").glob("*.yaml")})
        raise SpecError(
            f"--strategies: unknown strategy {name!r}: neither a preset ({', '.join(known)}) "
            f"nor a strategy YAML under {base}"
        )
    preset = yaml.safe_load(found.read_text())
    if not isinstance(preset, dict):
        raise SpecError(f"{found}: a strategy must be a YAML mapping (islands:, population:, ...)")
    return found.stem, preset


# ---------------------------------------------------------------------------
# Running


def run_study(
    spec_path: str | Path,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    seeds: int = 20,
    budget: int | None = None,
    out_dir: str | Path | None = None,
    stream: TextIO = sys.stderr,
    verbose: bool = False,
) -> StudyResult:
    """Run (or resume) every planned run, then write study.json, study.txt and study.png."""
    from metaexp.record.git import Git
    from metaexp.run.plan import make_plan

    base, runs = plan_runs(spec_path, strategies, seeds, budget)
    for run in {r.strategy: r for r in runs}.values():  # `metaexp validate`'s checks, before any run
        make_plan(run.spec)
    root = Git(base.root).toplevel()
    out = Path(out_dir) if out_dir else root / ".metaexp" / f"{base.tag}-study"
    summaries = []
    for i, run in enumerate(runs, 1):
        summary, interrupted = _run_one(run, root, f"[{i}/{len(runs)}] {run.spec.tag}:", stream, verbose)
        summaries.append(summary)
        if interrupted:
            print("study interrupted: run it again to resume", file=stream, flush=True)
            return StudyResult({}, summaries, interrupted=True)
    report = summarize(base, runs, summaries)
    write_outputs(report, summaries, out)
    return StudyResult(report, summaries, out=out)


def _run_one(
    run: PlannedRun, root: Path, head: str, stream: TextIO, verbose: bool
) -> tuple[RunSummary, bool]:
    """Run or resume one run unless its ledger shows it finished: its summary, and whether Ctrl-C
    stopped it."""
    summary = _summary_of(run, root)
    if summary.stop:
        print(f"{head} done earlier; {_outcome_text(summary)}", file=stream, flush=True)
        return summary, False
    print(f"{head} running ({run.strategy}, seed {run.seed})", file=stream, flush=True)
    t0 = time.monotonic()
    buffer = io.StringIO()
    try:
        result = _execute(run.spec, stream if verbose else buffer)
    except MetaexpError:
        raise  # a bad spec or state: every other run would fail the same way
    except Exception as exc:  # a bug in one run: the others still run; this one resumes later
        tail = "".join(buffer.getvalue().splitlines(True)[-5:])
        why = (str(exc).strip().splitlines() or [""])[-1]  # a Ray error's last line is the cause
        print(f"{head} failed: {type(exc).__name__}: {why}\n{tail}", file=stream, flush=True)
        return _summary_of(run, root), False
    summary = _summary_of(run, root)
    print(f"{head} {_outcome_text(summary)} ({time.monotonic() - t0:.1f}s)", file=stream, flush=True)
    return summary, result.interrupted


def _execute(spec: Spec, out: TextIO) -> Any:
    if spec.strategy.is_population:
        from metaexp.run.islands import PopulationLoop

        return PopulationLoop(spec, out=out).run()
    from metaexp.run.loop import Loop

    return Loop(spec, out=out).run()


def _summary_of(run: PlannedRun, root: Path) -> RunSummary:
    records = read_records(root / ".metaexp" / run.spec.tag / "experiments.jsonl")
    return summarize_run(run.spec, run.strategy, records)


def _outcome_text(s: RunSummary) -> str:
    best = "no value" if s.best is None else f"best {s.best:.6g}"
    if s.reached:
        return f"reached the target at evaluation {s.evals_to_target} ({best}; {s.stop})"
    return f"target not reached after {s.evaluations} evaluations ({best}; {s.stop or 'unfinished'})"


def summarize_run(spec: Spec, strategy: str, records: list[ExperimentRecord]) -> RunSummary:
    objective = Objective.of(spec)
    tally = Tally()
    for rec in records:
        tally.add(rec)
    curve: list[float | None] = []
    best: float | None = None
    first: int | None = None
    for rec in records:
        if not rec.status.harness_ran:
            continue
        if rec.value is not None and not rec.status.failed and objective.is_better(rec.value, best):
            best = rec.value
        curve.append(best)
        if first is None and objective.reached(best, spec.budget.target):
            first = len(curve)
    stop = budget_stop(spec, objective, tally) if records else None
    return RunSummary(
        spec.tag, strategy, spec.seed, first is not None, first, len(curve), best, stop or "", curve
    )


# ---------------------------------------------------------------------------
# Statistics


def wilson(successes: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion (sound at 0/n and n/n, unlike p ± z·se)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def median_to_target(evals: Sequence[int | None]) -> int | None:
    """The smallest count by which half the runs reached the target; None runs never did
    (censored beyond the budget), so with fewer than half successful the median is None."""
    reached = sorted(e for e in evals if e is not None)
    need = math.ceil(len(evals) / 2)
    return reached[need - 1] if evals and len(reached) >= need else None


def _median(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def summarize(base: Spec, runs: Sequence[PlannedRun], summaries: Sequence[RunSummary]) -> dict[str, Any]:
    rows = []
    for strategy in dict.fromkeys(r.strategy for r in runs):
        mine = [s for s in summaries if s.strategy == strategy and s.stop]  # finished runs only
        unfinished = sum(1 for s in summaries if s.strategy == strategy and not s.stop)
        successes = sum(s.reached for s in mine)
        low, high = wilson(successes, len(mine))
        evals = [s.evals_to_target for s in mine]
        rows.append(
            {
                "strategy": strategy,
                "runs": len(mine),
                "unfinished": unfinished,
                "successes": successes,
                "success_rate": successes / len(mine) if mine else 0.0,
                "ci95": [round(low, 4), round(high, 4)],
                "median_evals_to_target": median_to_target(evals),
                "median_evals_successful": _median([e for e in evals if e is not None]),
                "median_best": _median([s.best for s in mine if s.best is not None]),
                "median_evaluations": _median([s.evaluations for s in mine]),
            }
        )
    return {
        "spec": base.tag,
        "metric": base.objective.primary,
        "direction": base.direction,
        "target": base.budget.target,
        "budget": runs[0].spec.budget.max_experiments if runs else None,
        "seeds": sorted({r.seed for r in runs}),
        "censoring": "runs that never reached the target count as needing more than the budget",
        "unfinished": "runs that failed or were stopped before their budget; left out, resumed on a rerun",
        "strategies": rows,
    }


def format_table(report: dict[str, Any]) -> str:
    budget = report["budget"]
    lines = [
        f"study {report['spec']}: target {report['metric']} {report['target']:g} "
        f"({report['direction']}), budget {budget} evaluations, {len(report['seeds'])} seeds",
        f"{'strategy':<18}{'success':>9}  {'rate [95% CI]':<20}{'median evals':>13}"
        f"{'(successful)':>14}{'median best':>13}",
    ]
    for row in report["strategies"]:
        med = row["median_evals_to_target"]
        ok = row["median_evals_successful"]
        rate = f"{row['success_rate']:.2f} [{row['ci95'][0]:.2f}, {row['ci95'][1]:.2f}]"
        best = row["median_best"]
        lines.append(
            f"{row['strategy']:<18}{row['successes']:>4}/{row['runs']:<4}  {rate:<20}"
            f"{(str(med) if med is not None else f'>{budget}'):>13}"
            f"{(f'{ok:g}' if ok is not None else '-'):>14}"
            f"{(f'{best:.6g}' if best is not None else '-'):>13}"
        )
    lines.append("median evals: evaluations by which half the runs reached the target (>budget: fewer did)")
    unfinished = sum(row["unfinished"] for row in report["strategies"])
    if unfinished:
        lines.append(f"{unfinished} run(s) unfinished (failed): left out; run the study again to resume them")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Outputs


def write_outputs(report: dict[str, Any], summaries: Sequence[RunSummary], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = {**report, "runs": [asdict(s) for s in summaries]}
    (out / "study.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "study.txt").write_text(format_table(report) + "\n")
    plot_curves(report, summaries, out / "study.png")


def plot_curves(report: dict[str, Any], summaries: Sequence[RunSummary], path: Path) -> Path:
    """Per strategy: the median best-so-far over evaluations, with the runs' interquartile band.
    A run that stopped early (it reached the target) holds its last best to the end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    try:
        length = max((len(s.curve) for s in summaries), default=0)
        for row in report["strategies"]:
            mine = [s for s in summaries if s.strategy == row["strategy"] and s.stop]
            curves = [_padded(s.curve, length) for s in mine]
            curves = [c for c in curves if c]
            if not curves or not length:
                continue
            values = np.array(curves, dtype=float)
            x = np.arange(1, length + 1)
            label = f"{row['strategy']} ({row['successes']}/{row['runs']} reached)"
            (line,) = ax.plot(x, np.nanmedian(values, axis=0), lw=2, label=label)
            low, high = np.nanpercentile(values, [25, 75], axis=0)
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15, lw=0)
        ax.axhline(report["target"], color="black", ls="--", lw=1, label=f"target {report['target']:g}")
        better = "higher" if report["direction"] == "maximize" else "lower"
        ax.set_xlabel("evaluations")
        ax.set_ylabel(f"best {report['metric']} so far ({better} is better)")
        seeds = len(report["seeds"])
        ax.set_title(f"study {report['spec']}: median best-so-far and interquartile band, {seeds} seeds")
        ax.grid(alpha=0.25)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path


def _padded(curve: list[float | None], length: int) -> list[float]:
    if not curve:
        return []
    values = [math.nan if v is None else v for v in curve]
    return values + [values[-1]] * (length - len(values))
