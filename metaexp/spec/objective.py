"""The `objective:` block: its modes, their settings, and constraints parsed safely (no eval).

How a mode decides is metaexp/decide/objectives.py; this module only says what a valid block is.
Modes (the block's `mode:`):

* single            the primary's gain must exceed min_delta; |gain| <= min_delta is a tie.
* weighted          score = sum(w_i * sign_i * metric_i), compared like single (min_delta on the
                    score). Metrics on different scales weigh by their units: choose the weights
                    accordingly, or set `normalize: true` to weigh each metric's change relative to
                    the incumbent's value (|incumbent|; 1 where it is 0).
* threshold         a gate: each named metric must lie within its bounds (inclusive), else the
                    candidate is infeasible; only then is the primary compared, as in single.
* lexicographic     metric by metric in `order`; a difference within that metric's tolerance
                    counts as equal and passes to the next; equal on all is a tie.
* primary_secondary the primary must improve (as in single) and each secondary must not regress
                    past ratio x the incumbent's: minimised, at most ratio * incumbent; maximised,
                    at least incumbent / ratio. Ratios need positive values: where the incumbent's
                    is <= 0 the secondary may not regress at all.
* pareto            all metrics: better if no worse on every one and strictly better on one
                    (dominance), worse if dominated, a tie if equal. Mutually non-dominated (a
                    trade-off) is also a tie: a single lineage cannot hold both, so `ties` decides;
                    populations keep a front with NSGA-II selection instead.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator

from metaexp.spec.base import _Strict

__all__ = ["Bound", "Constraint", "Lexi", "Mode", "ObjectiveModeSpec", "PrimarySecondary"]

Mode = Literal["single", "weighted", "lexicographic", "threshold", "primary_secondary", "pareto"]

# ---------------------------------------------------------------- constraints: a safe parser, no eval

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_OP_RE = re.compile(r"<=|>=|==|!=|<|>")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_EXPECTED = "expected METRIC OP NUMBER or NUMBER OP METRIC, OP one of < <= > >= == != (e.g. 'mem_mb < 512')"
_JUST_VIOLATED = math.nextafter(0.0, 1.0)  # > 0 for Optuna: a strict bound hit exactly is infeasible


def _kind(side: str) -> str | None:
    if _NUMBER_RE.fullmatch(side):
        return "number"
    return "name" if _NAME_RE.fullmatch(side) else None


@dataclass(frozen=True)
class Constraint:
    """`metric op bound`, normalised so the metric is on the left ("0.5 <= acc" is "acc >= 0.5")."""

    metric: str
    op: str
    bound: float

    @classmethod
    def parse(cls, text: str) -> Constraint:
        ops = _OP_RE.findall(text)
        if len(ops) != 1:
            problem = "more than one comparison" if ops else "no comparison operator (equality is ==)"
            raise ValueError(f"constraint {text!r}: {problem}; {_EXPECTED}")
        left, right = (side.strip() for side in _OP_RE.split(text))
        kinds = (_kind(left), _kind(right))
        if kinds == ("name", "number"):
            return cls(left, ops[0], float(right))
        if kinds == ("number", "name"):
            return cls(right, _FLIP[ops[0]], float(left))
        if kinds == ("name", "name"):
            problem = "compares two metrics; one side must be a number"
        elif kinds == ("number", "number"):
            problem = "names no metric"
        else:
            problem = f"{left if kinds[0] is None else right!r} is neither a metric name nor a number"
        raise ValueError(f"constraint {text!r}: {problem}; {_EXPECTED}")

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"

    def satisfied(self, metrics: Mapping[str, float]) -> bool:
        value = metrics.get(self.metric)
        return value is not None and not math.isnan(value) and _OPS[self.op](value, self.bound)

    def violation(self, metrics: Mapping[str, float]) -> float:
        """<= 0 exactly when satisfied (Optuna's convention); the distance past the bound otherwise."""
        value = metrics.get(self.metric)
        if value is None or math.isnan(value):
            return math.inf
        if self.op in ("==", "!="):
            distance = abs(value - self.bound)
            return distance if self.op == "==" else (-distance if distance else _JUST_VIOLATED)
        margin = value - self.bound if self.op in ("<", "<=") else self.bound - value
        return _JUST_VIOLATED if margin == 0 and len(self.op) == 1 else margin


# ---------------------------------------------------------------- the `objective:` block


class Bound(_Strict):
    """Inclusive bounds of a threshold gate; at least one of them."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _some(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("a bound needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self

    def constraints(self, metric: str) -> list[Constraint]:
        pairs = ((">=", self.min), ("<=", self.max))
        return [Constraint(metric, op, bound) for op, bound in pairs if bound is not None]


class Lexi(_Strict):
    order: list[str] = Field(min_length=1, description="compared in this order; the first is the primary")
    tolerance: dict[str, float] = Field(default_factory=dict, description="absolute; default 0")

    @model_validator(mode="after")
    def _consistent(self) -> Lexi:
        if len(set(self.order)) != len(self.order):
            raise ValueError(f"order names a metric twice: {self.order}")
        for name, tol in self.tolerance.items():
            if name not in self.order:
                raise ValueError(f"tolerance.{name}: not in order {self.order}")
            if tol < 0:
                raise ValueError(f"tolerance.{name}: must be >= 0, got {tol:g}")
        return self


class PrimarySecondary(_Strict):
    max_regression: dict[str, float] = Field(
        min_length=1, description="secondary -> ratio: 2.0 lets it get up to twice as bad as the incumbent's"
    )

    @field_validator("max_regression")
    @classmethod
    def _ratios(cls, value: dict[str, float]) -> dict[str, float]:
        for name, ratio in value.items():
            if not ratio >= 1:
                raise ValueError(f"max_regression.{name}: a ratio >= 1 (2.0 allows 2x), got {ratio:g}")
        return value


# The block each mode needs; set under another mode it is a mistake, not something to ignore.
_BLOCKS = {
    "weighted": ("weights", "{metric: positive weight}"),
    "threshold": ("threshold", "{metric: {min: ..., max: ...}}"),
    "lexicographic": ("lexicographic", "{order: [m1, m2], tolerance: {m1: 0.001}}"),
    "primary_secondary": ("primary_secondary", "{max_regression: {latency_ms: 2.0}}"),
}


class ObjectiveModeSpec(_Strict):
    """The `objective:` block. Metric names are checked by validate_against, once the metrics are known."""

    mode: Mode = "single"
    primary: str
    secondary: str | None = Field(None, description="a second metric to show; primary_secondary: one guarded")
    min_delta: float = Field(0.0, ge=0, description="single, weighted, threshold, primary_secondary")
    ties: Literal["discard", "keep"] = "discard"
    weights: dict[str, float] = Field(default_factory=dict, description="weighted: applied after folding")
    normalize: bool = Field(False, description="weighted: weigh changes relative to the incumbent's values")
    threshold: dict[str, Bound] = Field(default_factory=dict, description="threshold: the gate")
    lexicographic: Lexi | None = None
    primary_secondary: PrimarySecondary | None = None
    constraints: list[str] = Field(default_factory=list, description="e.g. 'memory_mb < 512'; checked first")

    @field_validator("weights")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for name, weight in value.items():
            if not weight > 0:
                raise ValueError(f"weights.{name}: must be positive (direction is folded in), got {weight:g}")
        return value

    @field_validator("constraints")
    @classmethod
    def _parse(cls, value: list[str]) -> list[str]:
        for k, text in enumerate(value):
            try:
                Constraint.parse(text)
            except ValueError as exc:
                raise ValueError(f"constraints[{k}]: {exc}") from None
        return value

    @model_validator(mode="after")
    def _mode_fields(self) -> ObjectiveModeSpec:
        for mode, (key, shape) in _BLOCKS.items():
            if self.mode == mode and not getattr(self, key):
                raise ValueError(f"mode {mode!r} needs `{key}`: {shape}")
            if self.mode != mode and getattr(self, key):
                raise ValueError(f"`{key}` is set but mode is {self.mode!r}: set mode: {mode} or remove it")
        if self.normalize and self.mode != "weighted":
            raise ValueError(f"`normalize` is for mode weighted, not {self.mode!r}")
        if self.min_delta and self.mode in ("lexicographic", "pareto"):
            raise ValueError(f"min_delta is unused in mode {self.mode!r} (lexicographic: use its tolerance)")
        if self.secondary == self.primary:
            raise ValueError(f"secondary {self.secondary!r} is the primary")
        if self.lexicographic and self.lexicographic.order[0] != self.primary:
            raise ValueError(f"lexicographic.order must start with the primary {self.primary!r}")
        if self.primary_secondary:
            regress = self.primary_secondary.max_regression
            if self.primary in regress:
                raise ValueError(f"primary_secondary.max_regression.{self.primary}: the primary must improve")
            if self.secondary is not None and self.secondary not in regress:
                raise ValueError(f"secondary {self.secondary!r} has no primary_secondary.max_regression")
        return self

    def parsed_constraints(self) -> list[Constraint]:
        return [Constraint.parse(text) for text in self.constraints]

    def validate_against(self, metric_names: Iterable[str]) -> list[str]:
        """Errors naming each key (`objective.weights.acc`) that names no metric; empty when all do."""
        names = list(metric_names)
        known = f"(metrics: {', '.join(names)})"
        named = [("primary", self.primary)]
        if self.secondary is not None:
            named.append(("secondary", self.secondary))
        named += [(f"weights.{m}", m) for m in self.weights]
        named += [(f"threshold.{m}", m) for m in self.threshold]
        named += [("lexicographic.order", m) for m in self.lexicographic.order] if self.lexicographic else []
        regress = self.primary_secondary.max_regression if self.primary_secondary else {}
        named += [(f"primary_secondary.max_regression.{m}", m) for m in regress]
        named += [(f"constraints[{k}]", c.metric) for k, c in enumerate(self.parsed_constraints())]
        errors = [f"objective.{key}: {m!r} is not a metric {known}" for key, m in named if m not in names]
        if self.mode == "pareto" and len(names) < 2:
            errors.append(f"objective.mode: pareto needs at least two metrics {known}")
        return errors
