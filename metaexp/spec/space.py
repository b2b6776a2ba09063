"""Search spaces: YAML mappings of names to Optuna distributions."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from metaexp.errors import SpecError
from metaexp.spec import format_validation_error

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution


class Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None
    file: str | None = None  # which target file holds the name (default: the one that has it)

    @model_validator(mode="after")
    def _consistent(self) -> Param:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs choices: [...]")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError("needs low < high")
        if self.log and self.low <= 0:
            raise ValueError("log: true needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        return self

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.type == "categorical":
            return CategoricalDistribution(self.choices)
        if self.type == "int":
            step = int(self.step or 1)
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=step)
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    # --- a common [0, 1] coordinate, so styles can scale steps the same way for every type

    def to_unit(self, value: float) -> float:
        lo, hi = self._bounds()
        x = math.log(value) if self.log else float(value)
        return (x - lo) / (hi - lo)

    def from_unit(self, u: float) -> float | int:
        lo, hi = self._bounds()
        x = lo + min(max(u, 0.0), 1.0) * (hi - lo)
        value = math.exp(x) if self.log else x
        return self.clip(value)

    def clip(self, value: float) -> float | int:
        value = min(max(value, self.low), self.high)  # type: ignore[type-var]
        if self.step:
            value = self.low + round((value - self.low) / self.step) * self.step  # type: ignore[operator]
            value = min(value, self.high)  # type: ignore[type-var]
        return round(value) if self.type == "int" else float(value)

    def contains(self, value: Any) -> bool:
        if self.type == "categorical":
            return value in self.choices  # type: ignore[operator]
        return isinstance(value, int | float) and self.low <= value <= self.high  # type: ignore[operator]

    def _bounds(self) -> tuple[float, float]:
        if self.log:
            return math.log(self.low), math.log(self.high)  # type: ignore[arg-type]
        return float(self.low), float(self.high)  # type: ignore[arg-type]


Space = dict[str, Param]


def load_space(path: Path, key: str = "operator.space") -> Space:
    """The search space file `path`; `key` (the spec key that names it) starts every error."""
    from metaexp.spec.loading import parse_yaml, yaml_problem

    try:
        raw = parse_yaml(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{key}: file {path} not found") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{key}: {path}: {yaml_problem(exc)}") from None
    if not isinstance(raw, dict) or not raw:
        raise SpecError(
            f"{key}: {path}: must map names to distributions, "
            "e.g. LR: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}"
        )
    space: Space = {}
    for name, body in raw.items():
        try:
            space[str(name)] = Param.model_validate(body)
        except ValidationError as exc:
            message = format_validation_error(path, exc, prefix=str(name))
            raise SpecError(f"{key}: {message}") from None
    return space
