"""What `strategy.selection` names: a `Selection` (a population's parent and survivor selection) from
the built-ins (decide/selectors.py) or a plugin's entry point in the group `metaexp.selections`, or
an archive (`map_elites`: decide/archives.py, whose cells choose both)."""

from __future__ import annotations

import functools
import random
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from metaexp.decide.selectors import Individual
    from metaexp.plugins import Registry

__all__ = ["ARCHIVES", "Selection", "selection_names", "selections"]

ARCHIVES = ("map_elites",)  # selection values that are archives, not Selections


@runtime_checkable
class Selection(Protocol):
    """A population's parent and survivor selection, on folded fitness (`fitness(ind, signs)`:
    every sign applied, so higher is better in each value). Both are pure functions of their
    arguments, so a lineage rebuilt from the records selects what the run selected."""

    def parents(
        self,
        pop: list[Individual],
        k: int,
        signs: tuple[float, ...],
        rng: random.Random,
        *,
        tournament_size: int,
    ) -> list[Individual]:
        """k > 0 parents from a non-empty `pop` (repeats allowed), drawn only from `rng` (DEAP's
        selectors under `deap_adapters.global_random_from(rng)`), so the same rng state gives the same
        parents. `tournament_size` is strategy.tournament_size, for schemes that use one."""
        ...

    def admit(
        self, pop: list[Individual], child: Individual, size: int, signs: tuple[float, ...]
    ) -> list[Individual]:
        """The population after `child` (never a commit already in `pop`) arrives: at most `size`
        of `pop` and `child`, best first where that has a meaning. The child is kept (its record
        says `keep`) if it is among them."""
        ...


@functools.cache
def selections() -> Registry[Selection]:
    """Every Selection a spec may name: the built-ins (tournament, best, nsga2), then the entry
    points of the group `metaexp.selections` (each names a Selection; a class is instantiated with
    no arguments). Cached: `selections.cache_clear()` reads the installed plugins again."""
    from metaexp.plugins import SELECTIONS, Registry

    def builtin(name: str) -> Selection:
        from metaexp.decide.selectors import BUILTINS

        return BUILTINS[name]

    names = ("tournament", "best", "nsga2")
    return Registry(SELECTIONS, "selection", {n: functools.partial(builtin, n) for n in names}, _adapt)


def selection_names() -> list[str]:
    """What strategy.selection may be: the registered Selections, then the archives."""
    return [*selections().names(), *ARCHIVES]


def _adapt(obj: object) -> Selection:
    if isinstance(obj, type):
        obj = obj()
    missing = [m for m in ("parents", "admit") if not callable(getattr(obj, m, None))]
    if missing:
        raise TypeError(
            f"names a {type(obj).__name__} without {' and '.join(missing)} "
            "(see metaexp.decide.selections.Selection)"
        )
    return obj  # type: ignore[return-value]
