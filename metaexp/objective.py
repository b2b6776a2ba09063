"""How metrics become a decision: compare a candidate with the incumbent."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from metaexp.objectives import Decision, MultiObjective
from metaexp.spec import ObjectiveSpec, Spec


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
    def from_spec(cls, spec: ObjectiveSpec, direction: str) -> Objective:
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
