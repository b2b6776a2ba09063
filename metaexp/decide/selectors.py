"""Selectors: the parent and survivor selection schemes (tournament, best, NSGA-II), taken by name.

Individuals are plain data (decide/individuals.py); DEAP is called on throw-away wrappers, and
every call that can draw from its global `random` runs under `global_random_from(rng)`
(decide/deap_adapters.py), so runs replay and nobody else's random sequence moves.

`select_parents` and `admit` take the scheme by name (strategy.selection): one of the built-in
`Selection`s here, or a plugin's (decide/selections.py).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from metaexp.decide.deap_adapters import (
    admit_nsga2,
    crowded_tournament,
    global_random_from,
    wrap,
)
from metaexp.decide.individuals import Individual, SelectionError, dominates, fitness
from metaexp.decide.selections import selections

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


# ---------------------------------------------------------------------------
# The built-in Selections


class _Best:
    """Parents by linear ranking (the best is the likeliest, and every member breeds); survivors:
    the `size` best (a child before the members it ties)."""

    def parents(
        self, pop: list[Individual], k: int, signs: tuple[float, ...], rng: random.Random, **_: int
    ) -> list[Individual]:
        from deap import tools

        ranked = [e.ind for e in tools.selBest(wrap(pop, signs), len(pop))]
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
            return [e.ind for e in tools.selTournament(wrap(pop, signs), k, tournament_size)]


class _NSGA2:
    """NSGA-II: crowded binary tournaments for parents; fronts and crowding distance for survivors."""

    def parents(
        self, pop: list[Individual], k: int, signs: tuple[float, ...], rng: random.Random, **_: int
    ) -> list[Individual]:
        return crowded_tournament(wrap(pop, signs), k, rng)

    def admit(
        self, pop: list[Individual], child: Individual, size: int, signs: tuple[float, ...]
    ) -> list[Individual]:
        return admit_nsga2(pop, child, size, signs)


BUILTINS: dict[str, Selection] = {"tournament": _Tournament(), "best": _Best(), "nsga2": _NSGA2()}


def best(pop: list[Individual], signs: tuple[float, ...]) -> Individual:
    """Single objective: the highest fitness (the earliest of equals). Pareto: the first-front
    member best on the first value, later values breaking ties."""
    if not pop:
        raise SelectionError("an empty population has no best individual")
    if len(signs) == 1:
        return _rank_single(pop, signs)[0]
    from deap import tools

    front = tools.sortNondominated(wrap(pop, signs), len(pop), first_front_only=True)[0]
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
    for name, column in stats.compile(wrap(pop, signs)).items():
        if len(signs) == 1:
            row[name] = float(column[0])
        else:
            row.update({f"{name}_{i}": float(v) for i, v in enumerate(column)})
    return row
