"""Selectors: individuals as plain data, and DEAP's parent and survivor selection on light wrappers.

Individuals travel through Ray, so they are frozen dataclasses, never DEAP `creator` classes (those
pickle by value and lose their type). DEAP is called on throw-away wrappers whose fitness is the
folded tuple (every sign applied, so "higher is better" everywhere). DEAP draws from the global
`random` module: every call that can draw runs under `global_random_from(rng)`, which seeds the
global generator from the caller's rng and restores its state afterwards, so runs replay and
nobody else's random sequence moves.

`select_parents` and `admit` take the scheme by name (strategy.selection): one of the built-in
`Selection`s here, or a plugin's (decide/selections.py).
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from metaexp.decide.selections import selections
from metaexp.errors import MetaexpError

if TYPE_CHECKING:
    from metaexp.decide.selections import Selection

__all__ = [
    "PARENT_METHODS",
    "Individual",
    "SelectionError",
    "admit",
    "best",
    "dominates",
    "fitness",
    "global_random_from",
    "island_stats",
    "select_parents",
]

PARENT_METHODS = ("tournament", "best", "nsga2")  # the built-ins; map_elites parents: MapElites.sample


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


# ---------------------------------------------------------------------------
# DEAP plumbing: wrappers and the guarded global random state

_GLOBAL_RANDOM = threading.Lock()  # our own callers must not interleave seeding and drawing


@contextlib.contextmanager
def global_random_from(rng: random.Random) -> Iterator[None]:
    """Draws from the global `random` (DEAP's) inside are a function of `rng`; the global
    generator's state is restored afterwards."""
    with _GLOBAL_RANDOM:
        saved = random.getstate()
        random.seed(rng.getrandbits(64))
        try:
            yield
        finally:
            random.setstate(saved)


@functools.cache
def _fitness_class(m: int) -> type:
    from deap import base

    return type(f"_Fitness{m}", (base.Fitness,), {"weights": (1.0,) * m})


class _Entry:
    """What DEAP sees: a `.fitness` (already folded, so weights are all +1) and the individual."""

    __slots__ = ("fitness", "ind")

    def __init__(self, ind: Individual, signs: tuple[float, ...]) -> None:
        self.ind = ind
        self.fitness = _fitness_class(len(signs))(fitness(ind, signs))


def _wrap(pop: list[Individual], signs: tuple[float, ...]) -> list[_Entry]:
    return [_Entry(ind, signs) for ind in pop]


# ---------------------------------------------------------------------------
# Parents


def select_parents(
    pop: list[Individual],
    k: int,
    method: str,
    signs: tuple[float, ...],
    rng: random.Random,
    *,
    tournament_size: int = 3,
) -> list[Individual]:
    """k parents (repeats allowed); the same rng state gives the same parents."""
    selection = _registered(method, "parent")
    if k <= 0:
        return []
    if not pop:
        raise SelectionError("cannot select parents from an empty population")
    return selection.parents(list(pop), k, signs, rng, tournament_size=max(1, tournament_size))


def _registered(method: str, role: str) -> Selection:
    registry = selections()
    if method not in registry:
        hint = "map_elites parents come from MapElites.sample"
        raise SelectionError(f"{role} selection {method!r}: use one of {tuple(registry)} ({hint})")
    return registry[method]


def _crowded_tournament(entries: list[_Entry], k: int, rng: random.Random) -> list[Individual]:
    """NSGA-II mating: binary tournaments on (front rank, crowding distance), any k and population size."""
    from deap import tools
    from deap.tools.emo import assignCrowdingDist

    rank: dict[int, int] = {}
    for r, front in enumerate(tools.sortNondominated(entries, len(entries))):
        assignCrowdingDist(front)
        rank.update((id(e), r) for e in front)

    def key(e: _Entry) -> tuple[int, float]:
        return (-rank[id(e)], e.fitness.crowding_dist)

    chosen = []
    for _ in range(k):
        a, b = rng.choice(entries), rng.choice(entries)
        winner = a if key(a) > key(b) else b if key(b) > key(a) else rng.choice((a, b))
        chosen.append(winner.ind)
    return chosen


# ---------------------------------------------------------------------------
# Survivors


def admit(
    pop: list[Individual], child: Individual, size: int, method: str, signs: tuple[float, ...]
) -> tuple[list[Individual], bool]:
    """The population after `child` arrives, and whether the child is in it ("keep").

    A child that ties the worst member of a full population takes its place (a neutral move: a
    population drifts across a plateau, where a single lineage's ratchet with `ties: discard` would
    stay); a commit already in the population is not admitted twice. Single objective (best,
    tournament) returns best first; nsga2 returns front by front.
    """
    selection = _registered(method, "survivor")
    if size < 1:
        raise SelectionError(f"population size {size}: must be at least 1")
    if any(ind.commit == child.commit for ind in pop):
        return list(pop), False
    survivors = list(selection.admit(list(pop), child, size, signs))
    return survivors, child in survivors


def _rank_single(pop: list[Individual], signs: tuple[float, ...]) -> list[Individual]:
    """Best first; equal fitness keeps list order (stable sort), so earlier arrivals rank higher."""
    return sorted(pop, key=lambda ind: fitness(ind, signs), reverse=True)


def _admit_nsga2(
    pop: list[Individual], child: Individual, size: int, signs: tuple[float, ...]
) -> list[Individual]:
    from deap import tools

    child_fit = fitness(child, signs)
    if len(pop) >= size and any(fitness(ind, signs) == child_fit for ind in pop):
        return _nsga2_order(pop, size, signs)  # a copy of a member's point: the incumbent stays
    entries = _wrap([*pop, child], signs)
    return [e.ind for e in tools.selNSGA2(entries, min(size, len(entries)))]


def _nsga2_order(pop: list[Individual], size: int, signs: tuple[float, ...]) -> list[Individual]:
    from deap import tools

    return [e.ind for e in tools.selNSGA2(_wrap(pop, signs), min(size, len(pop)))]


# ---------------------------------------------------------------------------
# The built-in Selections


class _Best:
    """Parents by linear ranking (the best is the likeliest, and every member breeds); survivors:
    the `size` best (a child before the members it ties)."""

    def parents(
        self, pop: list[Individual], k: int, signs: tuple[float, ...], rng: random.Random, **_: int
    ) -> list[Individual]:
        from deap import tools

        ranked = [e.ind for e in tools.selBest(_wrap(pop, signs), len(pop))]
        weights = [len(ranked) - i for i in range(len(ranked))]
        return rng.choices(ranked, weights=weights, k=k)

    def admit(
        self, pop: list[Individual], child: Individual, size: int, signs: tuple[float, ...]
    ) -> list[Individual]:
        return _rank_single([child, *pop], signs)[:size]


class _Tournament(_Best):
    """Parents by DEAP's tournament of `tournament_size`; survivors as `best`."""

    def parents(
        self,
        pop: list[Individual],
        k: int,
        signs: tuple[float, ...],
        rng: random.Random,
        *,
        tournament_size: int = 3,
    ) -> list[Individual]:
        from deap import tools

        with global_random_from(rng):
            return [e.ind for e in tools.selTournament(_wrap(pop, signs), k, tournament_size)]


class _NSGA2:
    """NSGA-II: crowded binary tournaments for parents; fronts and crowding distance for survivors."""

    def parents(
        self, pop: list[Individual], k: int, signs: tuple[float, ...], rng: random.Random, **_: int
    ) -> list[Individual]:
        return _crowded_tournament(_wrap(pop, signs), k, rng)

    def admit(
        self, pop: list[Individual], child: Individual, size: int, signs: tuple[float, ...]
    ) -> list[Individual]:
        return _admit_nsga2(pop, child, size, signs)


BUILTINS: dict[str, Selection] = {"tournament": _Tournament(), "best": _Best(), "nsga2": _NSGA2()}


def best(pop: list[Individual], signs: tuple[float, ...]) -> Individual:
    """Single objective: the highest fitness (the earliest of equals). Pareto: the first-front
    member best on the first value, later values breaking ties."""
    if not pop:
        raise SelectionError("an empty population has no best individual")
    if len(signs) == 1:
        return _rank_single(pop, signs)[0]
    from deap import tools

    front = tools.sortNondominated(_wrap(pop, signs), len(pop), first_front_only=True)[0]
    return max(front, key=lambda e: e.fitness.wvalues).ind


# ---------------------------------------------------------------------------
# Statistics


def island_stats(pop: list[Individual], signs: tuple[float, ...], gen: int) -> dict[str, float]:
    """One Logbook-shaped row: gen, size and min/avg/max/std of folded fitness (max is the best).

    Several objectives get one column per objective: max_0, max_1, ...
    """
    row: dict[str, float] = {"gen": gen, "size": len(pop)}
    if not pop:
        return row
    import numpy as np
    from deap import tools

    stats = tools.Statistics(key=lambda e: e.fitness.values)
    for name, func in (("min", np.min), ("avg", np.mean), ("max", np.max), ("std", np.std)):
        stats.register(name, func, axis=0)
    for name, column in stats.compile(_wrap(pop, signs)).items():
        if len(signs) == 1:
            row[name] = float(column[0])
        else:
            row.update({f"{name}_{i}": float(v) for i, v in enumerate(column)})
    return row
