"""Archives across a population's islands: the hall of fame (the k best, or the Pareto front) and
MAP-Elites (the best individual per cell of a feature grid)."""

from __future__ import annotations

import math
import random
from typing import Any

from metaexp.decide.selectors import Individual, SelectionError, _rank_single, dominates, fitness

__all__ = ["HallOfFame", "MapElites"]


class HallOfFame:
    """Global: the k best distinct commits (one objective) or the Pareto front (several; k unused)."""

    def __init__(self, signs: tuple[float, ...], k: int = 10) -> None:
        if k < 1:
            raise SelectionError(f"hall of fame size {k}: must be at least 1")
        self.signs = tuple(signs)
        self.k = k
        self.members: list[Individual] = []  # best first (one objective) / arrival order (Pareto)

    def update(self, ind: Individual) -> bool:
        """Whether `ind` entered. Ties keep the incumbent."""
        if any(m.commit == ind.commit for m in self.members):
            return False
        if len(self.signs) > 1:
            return self._update_front(ind)
        ranked = _rank_single([*self.members, ind], self.signs)[: self.k]
        entered = ind in ranked
        self.members = ranked
        return entered

    def _update_front(self, ind: Individual) -> bool:
        fit = fitness(ind, self.signs)
        fits = [fitness(m, self.signs) for m in self.members]
        if any(f == fit or dominates(f, fit) for f in fits):
            return False
        self.members = [m for m, f in zip(self.members, fits, strict=True) if not dominates(fit, f)]
        self.members.append(ind)
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"signs": list(self.signs), "k": self.k, "members": [m.to_dict() for m in self.members]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HallOfFame:
        hof = cls(tuple(float(s) for s in data["signs"]), int(data["k"]))
        hof.members = [Individual.from_dict(m) for m in data["members"]]
        return hof


class MapElites:
    """A grid over feature descriptors holding the best individual per cell."""

    def __init__(self, bins: list[tuple[float, float, int]]) -> None:
        for low, high, count in bins:
            if not (high > low and count >= 1):
                raise SelectionError(f"MAP-Elites bin ({low}, {high}, {count}): need high > low, count >= 1")
        self.bins = [(float(low), float(high), int(count)) for low, high, count in bins]
        self.elites: dict[tuple[int, ...], Individual] = {}

    def cell(self, ind: Individual) -> tuple[int, ...]:
        """The cell of `ind`; features outside [low, high) land in the edge bins."""
        if len(ind.features) != len(self.bins):
            raise SelectionError(f"{ind.commit}: features {ind.features}, grid has {len(self.bins)}")
        if any(math.isnan(f) for f in ind.features):
            raise SelectionError(f"individual {ind.commit} has a NaN feature {ind.features}")
        return tuple(
            min(count - 1, max(0, math.floor((x - low) / (high - low) * count)))
            for x, (low, high, count) in zip(ind.features, self.bins, strict=True)
        )

    def add(self, ind: Individual, signs: tuple[float, ...]) -> bool:
        """Kept when it fills an empty cell or is strictly better than the cell's elite."""
        cell = self.cell(ind)
        elite = self.elites.get(cell)
        if elite is not None and fitness(ind, signs) <= fitness(elite, signs):
            return False
        self.elites[cell] = ind
        return True

    def sample(self, k: int, rng: random.Random) -> list[Individual]:
        """k parents, each from a cell drawn uniformly among the occupied ones (with replacement)."""
        if k > 0 and not self.elites:
            raise SelectionError("cannot sample parents from an empty MAP-Elites archive")
        cells = sorted(self.elites)  # independent of insertion order, so a reloaded archive replays
        return [self.elites[rng.choice(cells)] for _ in range(k)]

    def coverage(self) -> float:
        """Occupied cells as a fraction of all cells."""
        return len(self.elites) / math.prod(count for _, _, count in self.bins)

    def to_dict(self) -> dict[str, Any]:
        elites = [{"cell": list(c), "elite": e.to_dict()} for c, e in sorted(self.elites.items())]
        return {"bins": [list(b) for b in self.bins], "elites": elites}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MapElites:
        archive = cls([(float(lo), float(hi), int(n)) for lo, hi, n in data["bins"]])
        archive.elites = {tuple(e["cell"]): Individual.from_dict(e["elite"]) for e in data["elites"]}
        return archive
