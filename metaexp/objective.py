"""How metrics become a decision: compare a candidate with the incumbent."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from metaexp.spec import ObjectiveSpec


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

    @classmethod
    def from_spec(cls, spec: ObjectiveSpec, direction: str) -> Objective:
        sign = 1.0 if direction == "maximize" else -1.0
        return cls(spec.primary, sign, spec.min_delta, spec.ties == "keep")

    def value(self, metrics: dict[str, float]) -> float | None:
        return metrics.get(self.primary)

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
