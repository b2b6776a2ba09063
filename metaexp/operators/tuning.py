"""Tuning a candidate's numeric constants before it is judged: the hybrid operator's memetic step.

Tuning is Lamarckian: the candidate is evaluated as written first, then the sampler's suggestions
in a box around those values, and the best evaluation is the candidate's result; its values are
what gets committed. Every evaluation is a run of the one experiment (the line's `runs` list).
Which constants may move (the knobs) is metaexp/operators/knobs.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from metaexp.candidate import Candidate, TunePlan
from metaexp.evaluate.harness import Outcome
from metaexp.operators.values import apply_values, read_values
from metaexp.spec.space import Param

if TYPE_CHECKING:
    import optuna

    from metaexp.decide.objectives import Objective

RADIUS = 0.25  # half-width of the tuning box around the candidate's values, as a share of the range
Run = Callable[[Mapping[str, bytes], int, str], Outcome]  # (files, seed, log label) -> outcome


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
    tuning = _Tuning(cand, parent, objective)
    for _ask in range(3 * budget):  # a suggestion that rounds to a point already run costs no run
        if len(tuning.runs) == budget:
            break
        tuning.step(run, seed)
    return tuning.best()


class _Tuning:
    """One candidate's tuning: the sampler's private study over the box, and the runs so far."""

    def __init__(self, cand: Candidate, parent: Mapping[str, bytes], objective: Objective) -> None:
        import optuna

        from metaexp.operators.samplers import make_sampler

        assert cand.tune is not None
        self.cand, self.plan, self.parent, self.objective = cand, cand.tune, parent, objective
        self.files = {**parent, **cand.files}
        self.located = {name: knob.path for name, knob in self.plan.knobs.items()}
        self.written = read_values(self.located, self.files)
        knobs = self.plan.knobs.items()
        self.dists = {
            n: d
            for n, k in knobs
            if (d := local_distribution(k.param, self.written[n], self.plan.radius)) is not None
        }
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        direction = "maximize" if objective.sign > 0 else "minimize"
        sampler = make_sampler(self.plan.sampler, self.plan.seed, tuning_popsize(self.plan))
        self.study = optuna.create_study(direction=direction, sampler=sampler)
        self.runs: list[dict[str, Any]] = []
        self.outcomes: list[Outcome] = []
        self.tried: set[str] = set()

    def step(self, run: Run, seed: int) -> None:
        """One suggestion (the candidate's own values first), run unless it was run already."""
        trial = self.study.ask(self.dists) if self.runs else None
        point = {**self.written, **trial.params} if trial is not None else self.written
        changed, point, _ = apply_values(self.located, self.files, point)
        key = repr(sorted(point.items()))
        if key in self.tried:
            _tell(self.study, trial, next(r["value"] for r in self.runs if r["params"] == point))
            return
        self.tried.add(key)
        out = run({**self.files, **changed}, seed, str(len(self.runs)))
        value = self.objective.value(out.metrics) if out.status is None else None
        if value is not None and not self.objective.decide(out.metrics, None)[1]:
            value = None  # breaks a constraint or a gate: never the tuned best, a failure to the sampler
        if trial is None:
            _add(self.study, self.dists, point, value)
        else:
            _tell(self.study, trial, value)
        self.runs.append(_run_entry(point, out, value))
        self.outcomes.append(out)

    def best(self) -> tuple[Candidate, Outcome]:
        """The candidate as its best run left it (its own values if they won), and that run's
        outcome with every run's seconds."""
        runs, cand = self.runs, self.cand
        best: int | None = None
        for i, entry in enumerate(runs):
            value = entry["value"]
            if value is not None and (best is None or self.objective.is_better(value, runs[best]["value"])):
                best = i
        chosen = self.outcomes[0 if best is None else best]
        total = round(sum(r["harness_s"] for r in runs), 4)
        outcome = Outcome(chosen.status, chosen.metrics, total, chosen.reason, chosen.log_tail)
        extra = {**cand.extra, "runs": runs, "tune": self._summary(best)}
        if not best:  # the candidate's own values won (or nothing ran): commit them as written
            note = "; tuning kept its values" if best == 0 and len(runs) > 1 else ""
            tuned = replace(cand, description=cand.description + note, params=runs[0]["params"])
        else:
            changed, params, moved = apply_values(self.located, self.files, runs[best]["params"])
            kept = {p: c for p, c in changed.items() if self.parent.get(p) != c or p in cand.files}
            description = f"{cand.description}; tuned {moved}"
            tuned = replace(cand, files={**cand.files, **kept}, description=description, params=params)
        return replace(tuned, extra=extra, tune=None), outcome

    def _summary(self, best: int | None) -> dict[str, Any]:
        untuned = self.runs[0]["value"]
        tuned = self.runs[best]["value"] if best is not None else None
        gain = self.objective.gain(tuned, untuned) if tuned is not None and untuned is not None else None
        knobs = {n: k.param.model_dump(exclude_none=True) for n, k in self.plan.knobs.items()}
        return {
            "sampler": self.plan.sampler,
            "radius": self.plan.radius,
            "knobs": knobs,
            "evaluations": len(self.runs),
            "best_run": best,
            "untuned": untuned,
            "tuned": tuned,
            "gain": gain,
        }


ADAPT_OVER = 5  # the last tunings whose gains set the next box and budget


def adapted(gains: list[float | None], budget: int) -> tuple[float, int]:
    """The box's radius and the budget of the next tuning, from what the last tunings gained: a
    share h of them improving on the values as written gives RADIUS x (0.5 + h) (an eighth of the
    range when tuning never helps, three eighths when it always does) and the budget x (0.5 + h)
    but never above it (tune.budget is the user's cap), at least 2 runs; fewer than 3 tunings so
    far: RADIUS and the budget as set."""
    recent = [g for g in gains if g is not None][-ADAPT_OVER:]
    if len(recent) < 3 or budget < 2:
        return RADIUS, budget
    factor = 0.5 + sum(g > 0 for g in recent) / len(recent)
    return RADIUS * factor, max(2, round(budget * min(1.0, factor)))


def tuning_popsize(plan: TunePlan) -> int | None:
    """CMA-ES's population within one tuning: small enough that at least two generations fit in the
    budget after the candidate's own values (the second samples what the first taught it)."""
    from metaexp.operators.samplers import cma_popsize

    if plan.sampler != "cmaes":
        return None
    return max(4, min(cma_popsize(len(plan.knobs)), (plan.budget - 1) // 2))  # 4: the least with c_mu > 0


def local_distribution(
    param: Param, value: Any, radius: float = RADIUS
) -> optuna.distributions.BaseDistribution | None:
    """The tuning box: `radius` of the range either side of `value` (in log space where the range
    is log), inside the bounds; None when that leaves one value."""
    from optuna.distributions import FloatDistribution, IntDistribution

    if param.type == "categorical":
        return param.distribution()
    assert param.low is not None and param.high is not None
    here = param.to_unit(min(max(value, param.low), param.high))
    low, high = param.from_unit(here - radius), param.from_unit(here + radius)
    if not low < high:
        return None
    if param.type == "int":
        return IntDistribution(int(low), int(high), log=param.log, step=int(param.step or 1))
    return FloatDistribution(low, high, log=param.log, step=param.step)


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
