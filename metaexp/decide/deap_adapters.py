"""DEAP's side of selection: the wrappers DEAP sees, its guarded global random state, and the NSGA-II
pieces (crowded tournaments for parents, fronts and crowding distance for survivors).

DEAP is called on throw-away wrappers whose fitness is the folded tuple (every sign applied, so all
weights are +1). DEAP draws from the global `random` module: every call that can draw runs under
`global_random_from(rng)`, which seeds the global generator from the caller's rng and restores its
state afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading
from collections.abc import Iterator

from metaexp.decide.individuals import Individual, fitness

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


def wrap(pop: list[Individual], signs: tuple[float, ...]) -> list[_Entry]:
    return [_Entry(ind, signs) for ind in pop]


def crowded_tournament(entries: list[_Entry], k: int, rng: random.Random) -> list[Individual]:
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


def admit_nsga2(
    pop: list[Individual], child: Individual, size: int, signs: tuple[float, ...]
) -> list[Individual]:
    from deap import tools

    child_fit = fitness(child, signs)
    if len(pop) >= size and any(fitness(ind, signs) == child_fit for ind in pop):
        return _nsga2_order(pop, size, signs)  # a copy of a member's point: the incumbent stays
    entries = wrap([*pop, child], signs)
    return [e.ind for e in tools.selNSGA2(entries, min(size, len(entries)))]


def _nsga2_order(pop: list[Individual], size: int, signs: tuple[float, ...]) -> list[Individual]:
    from deap import tools

    return [e.ind for e in tools.selNSGA2(wrap(pop, signs), min(size, len(pop)))]
