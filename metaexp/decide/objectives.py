"""How metrics become a decision: the Objective (one sign, higher is better inside) and the
multi-metric modes behind it (MultiObjective), candidate against incumbent.

Every metric's direction is folded into one sign at construction, so inside everything reads
"higher is better". Constraints are checked first in every mode: a violation discards at once.
What each mode means is in metaexp/spec/objective.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from metaexp.errors import SpecError
from metaexp.spec import Spec
from metaexp.spec.objective import ObjectiveModeSpec

__all__ = ["Comparison", "Decision", "MultiObjective", "Objective"]


class Comparison(StrEnum):
    BETTER = "better"
    TIE = "tie"
    WORSE = "worse"


@dataclass(frozen=True)
class Objective:
    """The direction is folded into one sign, so inside everything reads 'higher is better'."""

    primary: str
    sign: float  # +1 maximise, -1 minimise
    min_delta: float = 0.0
    keep_ties: bool = False

    multi: MultiObjective | None = None  # the whole-metrics decision of the spec's objective mode

    @classmethod
    def from_spec(cls, spec: ObjectiveModeSpec, direction: str) -> Objective:
        sign = 1.0 if direction == "maximize" else -1.0
        return cls(spec.primary, sign, spec.min_delta, spec.ties == "keep")

    @classmethod
    def of(cls, spec: Spec) -> Objective:
        """The spec's objective: `value` is the decision value (the weighted score in weighted mode;
        the primary otherwise), `decide` compares whole metric dicts in the spec's mode."""
        base = cls.from_spec(spec.objective, spec.direction)
        return cls(
            base.primary,
            base.sign,
            base.min_delta,
            base.keep_ties,
            MultiObjective(spec.objective, spec.directions),
        )

    def value(self, metrics: dict[str, float]) -> float | None:
        if self.multi is not None and self.multi.spec.mode == "weighted":
            return self.multi.scalar(metrics)
        return metrics.get(self.primary)

    def decide(self, metrics: dict[str, float], incumbent: dict[str, float] | None) -> tuple[bool, bool, str]:
        """(accepted, feasible, reason) for a candidate's metrics against the incumbent's."""
        if self.multi is None:
            value, base = metrics.get(self.primary), (incumbent or {}).get(self.primary)
            return value is not None and self.accepts(value, base), True, ""
        decision, reason = self.multi.decide(metrics, incumbent or None)
        return self.multi.keeps(decision), decision is not Decision.INFEASIBLE, reason

    def tie(self, metrics: dict[str, float], incumbent: dict[str, float] | None) -> bool:
        """The candidate neither better nor worse than the incumbent (within min_delta, or equal in
        the multi-metric mode's terms)."""
        if incumbent is None:
            return False
        if self.multi is None:
            value, base = metrics.get(self.primary), incumbent.get(self.primary)
            return value is not None and base is not None and self.compare(value, base) is Comparison.TIE
        return self.multi.decide(metrics, incumbent)[0] is Decision.TIE

    def gain(self, value: float, incumbent: float) -> float:
        """Improvement of `value` over `incumbent`: positive is better."""
        return self.sign * (value - incumbent)

    def compare(self, value: float, incumbent: float | None) -> Comparison:
        if incumbent is None:
            return Comparison.BETTER
        gain = self.gain(value, incumbent)
        if gain > self.min_delta:
            return Comparison.BETTER
        if abs(gain) <= self.min_delta:
            return Comparison.TIE
        return Comparison.WORSE

    def accepts(self, value: float, incumbent: float | None) -> bool:
        outcome = self.compare(value, incumbent)
        return outcome is Comparison.BETTER or (outcome is Comparison.TIE and self.keep_ties)

    def is_better(self, value: float, best: float | None) -> bool:
        """Strictly better, for the best-so-far (no min_delta: a record is a record)."""
        return best is None or self.gain(value, best) > 0

    def reached(self, value: float | None, target: float | None) -> bool:
        return value is not None and target is not None and self.gain(value, target) >= 0


# ---------------------------------------------------------------- multi-metric decisions


class Decision(StrEnum):
    BETTER = "better"
    TIE = "tie"
    WORSE = "worse"
    INFEASIBLE = "infeasible"


def _unusable(metrics: Mapping[str, float], names: Iterable[str]) -> str | None:
    for name in names:
        value = metrics.get(name)
        if value is None:
            return f"has no metric {name!r}"
        if not math.isfinite(value):
            return f"has {name}={value}"
    return None


def _step(gain: float, min_delta: float, what: str) -> tuple[Decision, str]:
    """The single-metric rule on a folded gain: > min_delta better, within it a tie."""
    detail = f"{what} gain {gain:+.6g}, min_delta {min_delta:g}"
    if gain > min_delta:
        return Decision.BETTER, detail
    return (Decision.TIE if abs(gain) <= min_delta else Decision.WORSE), detail


Verdict = tuple[Decision, str]


class MultiObjective:
    """Decides keep/discard on whole metric dicts; see the module docstring for each mode."""

    def __init__(self, spec: ObjectiveModeSpec, directions: Mapping[str, str]) -> None:
        errors = spec.validate_against(directions)
        errors += [
            f"metrics.{m}.direction: {d!r} is not minimize/maximize"
            for m, d in directions.items()
            if d not in ("minimize", "maximize")
        ]
        if errors:
            raise SpecError("; ".join(errors))
        self.spec = spec
        self._direction = dict(directions)
        self._sign = {m: 1.0 if d == "maximize" else -1.0 for m, d in directions.items()}
        self._constraints = spec.parsed_constraints()
        self._gates = [c for m, bound in spec.threshold.items() for c in bound.constraints(m)]
        self._tolerance = spec.lexicographic.tolerance if spec.lexicographic else {}
        self._max_regression = spec.primary_secondary.max_regression if spec.primary_secondary else {}
        self._compared, self._compare = self._mode_rule()

    def _mode_rule(self) -> tuple[list[str], Callable[[Mapping[str, float], Mapping[str, float]], Verdict]]:
        s = self.spec
        if s.mode == "weighted":
            return list(s.weights), self._weighted
        if s.mode == "lexicographic" and s.lexicographic:
            return list(s.lexicographic.order), self._lexicographic
        if s.mode == "primary_secondary" and s.primary_secondary:
            return [s.primary, *s.primary_secondary.max_regression], self._primary_secondary
        if s.mode == "pareto":
            return list(self._direction), self._pareto
        return [s.primary], self._primary  # single, threshold

    def _gain(self, name: str, candidate: Mapping[str, float], incumbent: Mapping[str, float]) -> float:
        return self._sign[name] * (candidate[name] - incumbent[name])

    def decide(self, candidate: Mapping[str, float], incumbent: Mapping[str, float] | None) -> Verdict:
        """Feasibility first (metrics present and finite, constraints, threshold gate), then the mode."""
        checked = [c.metric for c in self._constraints + self._gates]
        problem = _unusable(candidate, [*self._compared, *checked])
        if problem:
            return Decision.INFEASIBLE, f"candidate {problem}"
        for kind, checks in (("violates", self._constraints), ("outside threshold", self._gates)):
            for c in checks:
                if not c.satisfied(candidate):
                    return Decision.INFEASIBLE, f"{kind} {c} ({c.metric}={candidate[c.metric]:.6g})"
        if incumbent is None:
            return Decision.BETTER, "first measurement"
        problem = _unusable(incumbent, self._compared)
        if problem:  # e.g. a resumed run whose spec gained a metric: the candidate replaces it
            return Decision.BETTER, f"incumbent {problem}"
        return self._compare(candidate, incumbent)

    def keeps(self, decision: Decision) -> bool:
        return decision is Decision.BETTER or (decision is Decision.TIE and self.spec.ties == "keep")

    def _primary(self, candidate: Mapping[str, float], incumbent: Mapping[str, float]) -> Verdict:
        p = self.spec.primary
        return _step(self._gain(p, candidate, incumbent), self.spec.min_delta, p)

    def _weighted(self, candidate: Mapping[str, float], incumbent: Mapping[str, float]) -> Verdict:
        gain = 0.0
        for name, weight in self.spec.weights.items():
            scale = (abs(incumbent[name]) or 1.0) if self.spec.normalize else 1.0
            gain += weight * self._gain(name, candidate, incumbent) / scale
        what = "normalised weighted score" if self.spec.normalize else "weighted score"
        return _step(gain, self.spec.min_delta, what)

    def _lexicographic(self, candidate: Mapping[str, float], incumbent: Mapping[str, float]) -> Verdict:
        for name in self._compared:
            gain, tol = self._gain(name, candidate, incumbent), self._tolerance.get(name, 0.0)
            if abs(gain) > tol:
                decision = Decision.BETTER if gain > 0 else Decision.WORSE
                return decision, f"{name} gain {gain:+.6g}, tolerance {tol:g}"
        return Decision.TIE, f"equal within tolerance on {', '.join(self._compared)}"

    def _primary_secondary(self, candidate: Mapping[str, float], incumbent: Mapping[str, float]) -> Verdict:
        decision, reason = self._primary(candidate, incumbent)
        if decision is Decision.WORSE:
            return decision, reason
        for name, ratio in self._max_regression.items():
            old, new = incumbent[name], candidate[name]
            limit = old if old <= 0 else (old * ratio if self._sign[name] < 0 else old / ratio)
            if self._sign[name] * (new - limit) < 0:
                return Decision.WORSE, f"{name} {new:.6g} regresses past {ratio:g}x the incumbent's {old:.6g}"
        return decision, reason

    def _pareto(self, candidate: Mapping[str, float], incumbent: Mapping[str, float]) -> Verdict:
        gains = {name: self._gain(name, candidate, incumbent) for name in self._compared}
        better = ", ".join(name for name, gain in gains.items() if gain > 0)
        worse = ", ".join(name for name, gain in gains.items() if gain < 0)
        if better and not worse:
            return Decision.BETTER, f"dominates: better on {better}, no worse elsewhere"
        if worse and not better:
            return Decision.WORSE, f"dominated: worse on {worse}, no better elsewhere"
        if not better:
            return Decision.TIE, "equal on every metric"
        return Decision.TIE, f"trade-off (non-dominated): better on {better}, worse on {worse}"

    # ------------------------------------------------------------ for Optuna studies

    def scalar(self, metrics: Mapping[str, float]) -> float | None:
        """The decision metric of a single-objective study: the weighted score (never normalised: there
        is no incumbent here) or the primary's raw value (lexicographic: its first key only); None for
        pareto or when a metric it needs is missing or not finite."""
        if self.spec.mode == "pareto" or _unusable(metrics, self._compared):
            return None
        if self.spec.mode == "weighted":
            return sum(w * self._sign[m] * metrics[m] for m, w in self.spec.weights.items())
        return float(metrics[self.spec.primary])

    def values(self, metrics: Mapping[str, float]) -> list[float] | None:
        """What to tell the trial, matching directions(): pareto every metric in order, else [scalar]."""
        if self.spec.mode != "pareto":
            value = self.scalar(metrics)
            return None if value is None else [value]
        return None if _unusable(metrics, self._compared) else [float(metrics[m]) for m in self._compared]

    def metric_names(self) -> list[str]:
        """The metrics the mode compares, in order (pareto: the trial's values)."""
        return list(self._compared)

    def directions(self) -> list[str]:
        if self.spec.mode == "pareto":
            return [self._direction[m] for m in self._compared]
        return ["maximize" if self.spec.mode == "weighted" else self._direction[self.spec.primary]]

    def constraint_names(self) -> list[str]:
        """The constraints, then the threshold bounds, as text: names for Optuna's constraint values."""
        return [str(c) for c in self._constraints + self._gates]

    def constraint_values(self, metrics: Mapping[str, float]) -> list[float]:
        """One value per constraint, then per threshold bound; <= 0 feasible (create_trial(constraints=))."""
        return [c.violation(metrics) for c in self._constraints + self._gates]
