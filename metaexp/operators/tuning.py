"""Tuning a candidate's numeric constants before it is judged: the hybrid operator's memetic step.

The knobs of a state are the constants the numeric search may move: the declared space's names,
the module-level UPPER_CASE numeric constants of Python targets (as `perturb` finds them), and any
module-level `NAME = number` marked with a trailing `# tune: LOW..HIGH [log]` comment. A declared
name has its space's bounds, a marked one its marker's; an unmarked constant gets bounds inferred
from its value the first time the lineage saw it (kept afterwards, so the lineage's trials share
one search space).

Tuning is Lamarckian: the candidate is evaluated as written first, then the sampler's suggestions
in a box around those values, and the best evaluation is the candidate's result; its values are
what gets committed. Every evaluation is a run of the one experiment (the line's `runs` list).
"""

from __future__ import annotations

import io
import math
import re
import tokenize
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from metaexp.candidate import Candidate
from metaexp.errors import TargetError
from metaexp.evaluate.harness import Outcome
from metaexp.operators import InvalidProposal
from metaexp.operators.target import has_value, numeric_constants
from metaexp.operators.values import apply_values, read_values
from metaexp.spec.space import Param, Space

if TYPE_CHECKING:
    import optuna

    from metaexp.decide.objectives import Objective

RADIUS = 0.25  # half-width of the tuning box around the candidate's values, as a share of the range
MARKER = re.compile(r"#\s*tune:(.*)$")
Run = Callable[[Mapping[str, bytes], int, str], Outcome]  # (files, seed, log label) -> outcome


@dataclass(frozen=True)
class Knob:
    name: str
    path: str
    param: Param
    source: str  # space | marker | constant


@dataclass(frozen=True)
class TunePlan:
    """What a candidate asks the loop to tune: its knobs, with which sampler, how many runs."""

    knobs: dict[str, Knob]
    sampler: str
    budget: int
    seed: int  # the sampler's seed


# ---------------------------------------------------------------------------- finding knobs


def find_knobs(
    files: Mapping[str, bytes], space: Space | None, seen: Mapping[str, Param] | None = None
) -> dict[str, Knob]:
    """The knobs of these files. A malformed `# tune:` marker is an InvalidProposal naming it;
    a file that does not parse has no knobs (its evaluation will say why)."""
    seen = seen or {}
    knobs: dict[str, Knob] = {}
    for path, text in sorted(files.items()):
        if not path.endswith(".py"):
            continue
        try:
            constants = numeric_constants(path, text)
            marked = markers(path, text)
        except TargetError:
            continue
        for name, value in constants.items():
            known = seen.get(name)
            param = known if known is not None and known.contains(value) else infer_param(value)
            knobs.setdefault(name, Knob(name, path, param, "constant"))
        for name, param in marked.items():
            if name not in knobs or knobs[name].path == path:
                knobs[name] = Knob(name, path, param, "marker")
    for name, param in (space or {}).items():
        holders = [p for p in sorted(files) if param.file in (None, p) and _has(p, files[p], name)]
        if len(holders) == 1:
            knobs[name] = Knob(name, holders[0], param, "space")
        elif name in knobs and knobs[name].source != "space":
            del knobs[name]  # found twice: ambiguous, as it is for `params`
    return knobs


def markers(path: str, text: bytes) -> dict[str, Param]:
    """`NAME = number  # tune: LOW..HIGH [log]` lines of a Python file, as parameters."""
    import ast

    found: dict[str, Param] = {}
    try:
        assigned = _module_numbers(ast.parse(text, filename=path))
    except (SyntaxError, ValueError) as exc:
        raise TargetError(f"{path}: cannot parse: {exc}") from exc
    for line, comment in _comments(path, text):
        match = MARKER.match(comment)
        if match is None:
            continue
        where = f"{path} line {line}"
        if line not in assigned:
            raise InvalidProposal(f"{where}: a `# tune:` marker must end a module-level `NAME = number` line")
        name, value = assigned[line]
        found[name] = _marker_param(where, name, value, match.group(1))
    return found


def infer_param(value: int | float) -> Param:
    """Bounds for an unmarked constant: a decade either side of a positive float (log), a factor
    of four for a positive int, symmetric around zero otherwise."""
    if isinstance(value, int):
        if value > 0:
            return Param(type="int", low=max(1, value // 4), high=max(4 * value, value + 4))
        return Param(type="int", low=5 * value - 4, high=-5 * value + 4)
    if value > 0:
        return Param(type="float", low=value / 10, high=value * 10, log=True)
    if value < 0:
        return Param(type="float", low=10 * value, high=-10 * value)
    return Param(type="float", low=-1.0, high=1.0)


def _has(path: str, text: bytes, name: str) -> bool:
    try:
        return has_value(path, text, name)
    except TargetError:
        return False


def _comments(path: str, text: bytes) -> list[tuple[int, str]]:
    try:
        tokens = list(tokenize.tokenize(io.BytesIO(text).readline))
    except (tokenize.TokenError, SyntaxError) as exc:
        raise TargetError(f"{path}: cannot tokenize: {exc}") from exc
    return [(tok.start[0], tok.string) for tok in tokens if tok.type == tokenize.COMMENT]


def _module_numbers(module: Any) -> dict[int, tuple[str, int | float]]:
    """{last line: (name, value)} of module-level `NAME = number` statements."""
    import ast

    found: dict[int, tuple[str, int | float]] = {}
    for stmt in module.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
            continue
        target = stmt.targets[0]
        try:
            value = ast.literal_eval(stmt.value)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            continue
        if isinstance(target, ast.Name) and isinstance(value, int | float) and not isinstance(value, bool):
            found[stmt.end_lineno or stmt.lineno] = (target.id, value)
    return found


def _marker_param(where: str, name: str, value: int | float, body: str) -> Param:
    words = body.split()
    usage = "expected `# tune: LOW..HIGH` or `# tune: LOW..HIGH log`, e.g. `# tune: 1e-4..1e-1 log`"
    if not words or ".." not in words[0] or words[1:] not in ([], ["log"]):
        raise InvalidProposal(f"{where}: malformed marker `# tune:{body}` ({usage})")
    low_text, high_text = words[0].split("..", 1)
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise InvalidProposal(f"{where}: malformed marker `# tune:{body}` ({usage})") from None
    log = words[1:] == ["log"]
    if not (math.isfinite(low) and math.isfinite(high) and low < high) or (log and low <= 0):
        why = "needs LOW < HIGH" + (" and LOW > 0 with log" if log else "")
        raise InvalidProposal(f"{where}: marker `# tune:{body}` {why}")
    if isinstance(value, int):
        low, high = math.ceil(low), math.floor(high)
        if low >= high:
            raise InvalidProposal(f"{where}: {name} is an int; `# tune:{body}` holds fewer than two ints")
    if not low <= value <= high:
        raise InvalidProposal(f"{where}: {name} = {value} lies outside its marker's range {low:g}..{high:g}")
    return Param(type="int" if isinstance(value, int) else "float", low=low, high=high, log=log)


# ---------------------------------------------------------------------------- tuning


def tune(
    cand: Candidate,
    parent: Mapping[str, bytes],
    run: Run,
    objective: Objective,
    seed: int,
    budget: int,
) -> tuple[Candidate, Outcome]:
    """Evaluate the candidate as written, then up to budget - 1 sampled variants of its knobs;
    the best evaluation is the candidate: its files, params and outcome (harness_s: all runs)."""
    import optuna

    from metaexp.operators.params import make_sampler

    plan = cand.tune
    assert plan is not None
    files = {**parent, **cand.files}
    located = {name: knob.path for name, knob in plan.knobs.items()}
    written = read_values(located, files)
    dists = {
        n: d for n, k in plan.knobs.items() if (d := local_distribution(k.param, written[n])) is not None
    }
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "maximize" if objective.sign > 0 else "minimize"
    study = optuna.create_study(direction=direction, sampler=make_sampler(plan.sampler, plan.seed))
    runs: list[dict[str, Any]] = []
    outcomes: list[Outcome] = []
    tried: set[str] = set()
    point: dict[str, Any] = written
    for _ask in range(3 * budget):  # a suggestion that rounds to a point already run costs no run
        if len(runs) == budget:
            break
        trial = None
        if runs:
            trial = study.ask(dists)
            point = {**written, **trial.params}
        changed, point, _ = apply_values(located, files, point)
        key = repr(sorted(point.items()))
        if key in tried:
            _tell(study, trial, next(r["value"] for r in runs if r["params"] == point))
            continue
        tried.add(key)
        out = run({**files, **changed}, seed, str(len(runs)))
        value = objective.value(out.metrics) if out.status is None else None
        if value is not None and not objective.decide(out.metrics, None)[1]:
            value = None  # breaks a constraint or a gate: never the tuned best, a failure to the sampler
        if trial is None:
            _add(study, dists, point, value)
        else:
            _tell(study, trial, value)
        runs.append(_run_entry(point, out, value))
        outcomes.append(out)
    return _best(cand, parent, files, located, runs, outcomes, objective, plan)


def local_distribution(param: Param, value: Any) -> optuna.distributions.BaseDistribution | None:
    """The tuning box: RADIUS of the range either side of `value` (in log space where the range is
    log), inside the bounds; None when that leaves one value."""
    from optuna.distributions import FloatDistribution, IntDistribution

    if param.type == "categorical":
        return param.distribution()
    assert param.low is not None and param.high is not None
    here = param.to_unit(min(max(value, param.low), param.high))
    low, high = param.from_unit(here - RADIUS), param.from_unit(here + RADIUS)
    if not low < high:
        return None
    if param.type == "int":
        return IntDistribution(int(low), int(high), log=param.log, step=int(param.step or 1))
    return FloatDistribution(low, high, log=param.log, step=param.step)


def _best(
    cand: Candidate,
    parent: Mapping[str, bytes],
    files: dict[str, bytes],
    located: dict[str, str],
    runs: list[dict[str, Any]],
    outcomes: list[Outcome],
    objective: Objective,
    plan: TunePlan,
) -> tuple[Candidate, Outcome]:
    best: int | None = None
    for i, entry in enumerate(runs):
        value = entry["value"]
        if value is not None and (best is None or objective.is_better(value, runs[best]["value"])):
            best = i
    total = round(sum(r["harness_s"] for r in runs), 4)
    chosen = outcomes[0 if best is None else best]
    outcome = Outcome(chosen.status, chosen.metrics, total, chosen.reason, chosen.log_tail)
    untuned, tuned = runs[0]["value"], runs[best]["value"] if best is not None else None
    summary: dict[str, Any] = {
        "sampler": plan.sampler,
        "knobs": {n: k.param.model_dump(exclude_none=True) for n, k in plan.knobs.items()},
        "evaluations": len(runs),
        "best_run": best,
        "untuned": untuned,
        "tuned": tuned,
        "gain": objective.gain(tuned, untuned) if tuned is not None and untuned is not None else None,
    }
    extra = {**cand.extra, "runs": runs, "tune": summary}
    if not best:  # the candidate's own values won (or nothing ran): commit them as written
        note = "; tuning kept its values" if best == 0 and len(runs) > 1 else ""
        tuned_cand = replace(cand, description=cand.description + note, params=runs[0]["params"])
    else:
        changed, params, moved = apply_values(located, files, runs[best]["params"])
        kept = {p: c for p, c in changed.items() if parent.get(p) != c or p in cand.files}
        tuned_cand = replace(
            cand,
            files={**cand.files, **kept},
            description=f"{cand.description}; tuned {moved}",
            params=params,
        )
    return replace(tuned_cand, extra=extra, tune=None), outcome


def _run_entry(point: dict[str, Any], out: Outcome, value: float | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"params": point, "metrics": out.metrics, "value": value}
    entry["harness_s"] = round(out.harness_s, 4)
    if out.status is not None:
        entry["status"], entry["reason"] = str(out.status), out.reason
    return entry


def _tell(study: optuna.Study, trial: optuna.trial.Trial | None, value: float | None) -> None:
    from optuna.trial import TrialState

    if trial is not None:
        study.tell(trial, value, state=TrialState.COMPLETE if value is not None else TrialState.FAIL)


def _add(
    study: optuna.Study,
    dists: dict[str, optuna.distributions.BaseDistribution],
    point: dict[str, Any],
    value: float | None,
) -> None:
    """The candidate's own values as the study's first trial, where they lie inside the box."""
    from optuna.trial import TrialState, create_trial

    state = TrialState.COMPLETE if value is not None else TrialState.FAIL
    try:
        trial = create_trial(
            state=state, value=value, params={n: point[n] for n in dists}, distributions=dists
        )
    except ValueError:  # a value outside its box (e.g. beyond a declared bound): not a point of it
        return
    study.add_trial(trial)
