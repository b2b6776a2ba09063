"""Individuals as plain data, their folded fitness and Pareto dominance.

Individuals travel through Ray, so they are frozen dataclasses, never DEAP `creator` classes (those
pickle by value and lose their type). Fitness is the tuple of values with every direction folded
in, so "higher is better" everywhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from metaexp.errors import MetaexpError


class SelectionError(MetaexpError, ValueError):
    """A population, method or individual that selection cannot work with."""


@dataclass(frozen=True)
class Individual:
    commit: str
    n: int  # the experiment number that produced it
    values: tuple[float, ...]  # metric values in objective order
    features: tuple[float, ...] = ()  # MAP-Elites descriptors
    island: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Individual:
        return cls(
            str(data["commit"]),
            int(data["n"]),
            tuple(float(v) for v in data["values"]),
            tuple(float(f) for f in data.get("features", ())),
            int(data.get("island", 0)),
        )


def fitness(ind: Individual, signs: tuple[float, ...]) -> tuple[float, ...]:
    """The values with each direction folded in (+1 maximise, -1 minimise): higher is better."""
    if len(ind.values) != len(signs):
        raise SelectionError(f"individual {ind.commit} has {len(ind.values)} values, signs {signs}")
    if any(math.isnan(v) for v in ind.values):
        raise SelectionError(f"individual {ind.commit} has a NaN value {ind.values}: that is a crash")
    return tuple(s * v for s, v in zip(signs, ind.values, strict=True))


def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Pareto dominance on folded fitness: no worse everywhere, strictly better somewhere."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and a != b
