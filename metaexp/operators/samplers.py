"""Optuna's samplers as the params operator (and the hybrid's arms and tuning) use them: making one,
the search a lineage runs between two restarts, and CMA-ES's population size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from metaexp.errors import SpecError

if TYPE_CHECKING:
    import optuna

    from metaexp.spec.space import Space

SAMPLERS = ("tpe", "cmaes", "lq-cmaes", "random", "gp", "surrogate")


def make_sampler(
    kind: str, seed: int, popsize: int | None = None, x0: dict[str, Any] | None = None
) -> optuna.samplers.BaseSampler:
    """CMA-ES: `x0` centres its first generation (default: the middle of the space), `popsize` is its
    population (default 4 + 3 ln d), and a categorical is TPE's on its own (not Optuna's uniform
    draw: model_sampler.independent_sampler). Optuna 5 deprecates x0 for 6.0 (metaexp pins optuna < 6)."""
    import warnings

    import optuna

    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if kind == "cmaes":
        from metaexp.operators.model_sampler import independent_sampler

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return optuna.samplers.CmaEsSampler(
                seed=seed,
                popsize=popsize,
                x0=x0,
                warn_independent_sampling=False,
                independent_sampler=independent_sampler(seed),
            )
    if kind == "lq-cmaes":
        from metaexp.operators.lq_cmaes import LqCmaesSampler

        return LqCmaesSampler(seed=seed, x0=x0, popsize=popsize)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "gp":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise SpecError("operator.sampler gp needs torch: pip install torch==2.13.0") from None
        return optuna.samplers.GPSampler(seed=seed)
    if kind == "surrogate":
        from metaexp.operators.surrogate import SurrogateSampler

        return SurrogateSampler(seed=seed)
    raise SpecError(f"operator.sampler: unknown sampler {kind!r} (one of {', '.join(SAMPLERS)})")


# what a sampler imports on its first proposal, lazily (Optuna's _LazyImport): cmaes pulls in
# scipy.stats (0.6-1 s here), the GP sampler torch
_FIRST_USE_IMPORTS = {"cmaes": ("cmaes",), "lq-cmaes": ("cmaes",), "gp": ("torch",)}
_importing: set[str] = set()


def import_ahead(kind: str) -> None:
    """Start importing, in a daemon thread, what sampler `kind` imports on its first proposal: the
    session's start and the baseline wait on git and on the harness, which hides most of it, and
    the first proposal waits on the module's import lock for the rest (Python's per-module import
    locks make a module imported from two threads load once, whole)."""
    import threading

    modules = [m for m in _FIRST_USE_IMPORTS.get(kind, ()) if m not in _importing]
    if not modules:
        return
    _importing.update(modules)

    def load() -> None:
        import contextlib
        import importlib

        for module in modules:
            with contextlib.suppress(ImportError):  # make_sampler says what is missing, in the loop
                importlib.import_module(module)

    thread = threading.Thread(target=load, name=f"import {kind}", daemon=True)
    thread.start()
    import atexit

    atexit.register(thread.join, 10)  # a run shorter than the import: no exit mid-import


@dataclass
class Search:
    """The sampler between two restarts: its private study, and for CMA-ES where its first
    generation is centred and how large its population is."""

    study: optuna.Study
    x0: dict[str, Any] | None = None
    popsize: int | None = None
    space_cache: Any = None  # the samplers' search-space cache over this study (see sampler())
    _sampler: Any = None  # the search's sampler, reseeded per proposal (see sampler())

    def sampler(self, kind: str, seed: int) -> optuna.samplers.BaseSampler:
        """The search's sampler for one proposal, seeded by it (a resumed run asks exactly what this
        one did). Made once per search and reseeded per proposal where a sampler's only state
        besides its settings is its random streams and the search-space cache (tpe, cmaes, random;
        lq-cmaes also keeps its replay): a fresh one built two numpy RandomStates from the OS's
        entropy before seeding them (~0.4 ms a proposal), and its fresh IntersectionSearchSpace read
        the whole history on every ask."""
        if kind in _RESEEDABLE and self._sampler is not None:
            _reseed(self._sampler, seed)
            return self._sampler
        sampler = make_sampler(kind, seed, self.popsize, self.x0)
        attr = next((a for a in _SPACE_CACHES if hasattr(sampler, a)), None)
        if attr is not None:  # the GP sampler, made per proposal, keeps the search-space cache
            if self.space_cache is None:
                self.space_cache = getattr(sampler, attr)
            else:
                setattr(sampler, attr, self.space_cache)
        if kind in _RESEEDABLE:
            self._sampler = sampler
        return sampler

    def converged(self, space: Space, spread: float) -> bool:
        """CMA-ES's newest full generation spans less than `spread` of every range (in unit space);
        lq-CMA-ES's (which evaluates a few members of a generation): twice its distribution's
        largest standard deviation, as its newest trial recorded it."""
        from metaexp.operators.lq_cmaes import PREFIX

        for t in reversed(self.study.get_trials(deepcopy=False)):
            if PREFIX + "spread" in t.system_attrs:
                return 2 * float(t.system_attrs[PREFIX + "spread"]) < spread
        numeric = [n for n, p in space.items() if p.type != "categorical"]
        popsize = self.popsize or cma_popsize(len(numeric))  # (lq-cmaes returned above)
        generations: dict[int, list[list[float]]] = {}
        for t in reversed(self.study.get_trials(deepcopy=False)):  # the newest full generation
            g = next((v for k, v in t.system_attrs.items() if k.endswith(":generation")), None)
            if g is None or not t.state.is_finished() or any(n not in t.params for n in numeric):
                continue  # (a narrowing style's trials are told FAIL: CMA-ES stays in generation 0)
            points = generations.setdefault(g, [])
            points.append([space[n].to_unit(t.params[n]) for n in numeric])
            if len(points) == popsize:
                return all(max(col) - min(col) < spread for col in zip(*points, strict=True))
        return False


# where Optuna's relative samplers keep their IntersectionSearchSpace (CMA-ES; GP)
_SPACE_CACHES = ("_search_space", "_intersection_search_space")
# samplers whose state is their settings, their seeded random streams and the search-space cache
# (lq-cmaes: and its replay of the search, checked against the history on every ask): reseeded,
# one asks what a fresh one with that seed would (tests/operators/test_params.py)
_RESEEDABLE = ("tpe", "cmaes", "lq-cmaes", "random")


def _reseed(sampler: Any, seed: int) -> None:
    """Seed every random stream of `sampler` and of the samplers it holds (CMA-ES's and TPE's
    independent RandomSampler) with `seed`, as their constructors do with `seed=`; a sampler of
    metaexp's own that keeps more than streams (lq-cmaes) seeds itself."""
    from optuna.samplers import BaseSampler
    from optuna.samplers._lazy_random_state import LazyRandomState

    if hasattr(sampler, "reseed"):
        sampler.reseed(seed)
        return

    for value in vars(sampler).values():
        if isinstance(value, LazyRandomState):
            value.rng.seed(seed)
        elif isinstance(value, BaseSampler):
            _reseed(value, seed)


def cma_popsize(dimensions: int, kind: str = "cmaes") -> int:
    """CMA-ES's default population for a space of `dimensions` numbers: 4 + floor(3 ln d); twice
    that for lq-cmaes, whose model screens a generation so that a larger one costs few more
    evaluations (on held-out BBOB functions, d = 5 and 10, its best f at 100-300 evaluations was
    0.68 x CMA-ES's against 0.72 x with the default: bench/README.md, search_quality)."""
    import math

    return (2 if kind == "lq-cmaes" else 1) * (4 + int(3 * math.log(max(1, dimensions))))
