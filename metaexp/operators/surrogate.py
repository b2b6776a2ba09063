"""A sampler for discrete spaces that models the metric: `operator.sampler: surrogate`.

It fits a second-order model of the metric (every value of every parameter, and every pair of
values of two parameters: the pairwise model of BOCS, Baptista & Poloczek 2018) to every evaluation
by ridge regression, and proposes the untried point the model scores best: every point of the
space when it has at most `ENUMERATE` of them, otherwise the best of random points and of the
neighbours of the best points tried. Its first `startup` proposals are untried points drawn
uniformly. Only ints, stepped floats and categoricals: a continuous float is a spec error
(`check_space`), since its values cannot be enumerated.

Why not Optuna's own: TPE models each parameter apart, and the GP sampler's kernel sees a binary
space as a cube, so neither learns that a block of values pays only whole (a deceptive trap), and
the GP sampler takes minutes per proposal there. numpy only: the model is one linear solve.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState

from metaexp.errors import SpecError
from metaexp.operators.model_sampler import ModelSampler

if TYPE_CHECKING:
    from metaexp.spec.space import Space

ENUMERATE = 1 << 16  # a space of at most this many points is scored whole
POOL = 16384  # else: this many random points, and the neighbours of the best tried
MAX_CHOICES = 64  # values of one parameter
MAX_FEATURES = 20000  # terms of the pairwise model
SCORED_AT_ONCE = 4_000_000  # points x terms scored in one block (32 MB of floats)


def choices(dist: BaseDistribution) -> list[Any] | None:
    """The values of a discrete distribution, in order; None for a continuous one."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, FloatDistribution) and dist.step is not None:
        count = round((dist.high - dist.low) / dist.step) + 1
        return [dist.low + i * dist.step for i in range(count)]
    return None


def position(dist: BaseDistribution, value: Any, count: int) -> int | None:
    """The index of `value` among the `count` values `choices(dist)`; None when it is not one."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices.index(value) if value in dist.choices else None
    if isinstance(dist, IntDistribution | FloatDistribution) and dist.step is not None:
        k = round((value - dist.low) / dist.step)
        on_grid = abs(dist.low + k * dist.step - value) <= 1e-9 * max(1.0, abs(value))
        return k if on_grid and 0 <= k < count else None
    return None


def check_space(space: Space) -> list[int]:
    """One line naming the parameter the surrogate sampler cannot model; else each parameter's
    number of values."""
    sizes = []
    for name, param in space.items():
        values = choices(param.distribution())
        if values is None:
            raise SpecError(
                f"operator.sampler surrogate: {name} is a continuous float; give it a step "
                "(or use tpe, cmaes or gp)"
            )
        if len(values) > MAX_CHOICES:
            raise SpecError(
                f"operator.sampler surrogate: {name} has {len(values)} values (at most {MAX_CHOICES}); "
                "give it a larger step (or use tpe, cmaes or gp)"
            )
        sizes.append(len(values))
    terms = _feature_count(sizes)
    if terms > MAX_FEATURES:
        raise SpecError(
            f"operator.sampler surrogate: the pairwise model of this space has {terms} terms "
            f"(at most {MAX_FEATURES}): fewer or smaller parameters (or use tpe, cmaes or gp)"
        )
    return sizes


def describe(space: Space) -> str:
    """What `metaexp validate` says of the sampler on this space (check_space passed)."""
    sizes = check_space(space)
    total = math.prod(sizes)
    where = "scored whole" if total <= ENUMERATE else f"more than {ENUMERATE}: random points and neighbours"
    return (
        f"sampler surrogate: a pairwise model of {_feature_count(sizes)} terms over {total} points "
        f"({where}); its first 10 proposals are untried points drawn uniformly"
    )


def _width(size: int) -> int:
    """Columns of one parameter: a sign for two values, one-hot for more."""
    return 1 if size == 2 else size


def _feature_count(sizes: Sequence[int]) -> int:
    widths = [_width(s) for s in sizes]
    return 1 + sum(widths) + sum(a * b for a, b in itertools.combinations(widths, 2))


def features(index: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """The pairwise model's terms of points given as value indices (rows): a constant, each
    parameter's columns, and the products of every two parameters' columns."""
    blocks = []
    for j, size in enumerate(sizes):
        col = index[:, j]
        if size == 2:
            blocks.append((2.0 * col - 1.0)[:, None])
        else:
            blocks.append(np.eye(size)[col])
    cols = [np.ones((len(index), 1)), *blocks]
    for a, b in itertools.combinations(blocks, 2):
        cols.append((a[:, :, None] * b[:, None, :]).reshape(len(index), -1))
    return np.concatenate(cols, axis=1)


def fit(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge weights of the model (rows `x` of terms, values `y` standardised), in whichever of the
    primal or the dual is the smaller solve."""
    z = (y - y.mean()) / (y.std() or 1.0)
    n, d = x.shape
    if n < d:  # w = X' (X X' + r I)^-1 z
        return x.T @ np.linalg.solve(x @ x.T + ridge * np.eye(n), z)
    return np.linalg.solve(x.T @ x + ridge * np.eye(d), x.T @ z)


class SurrogateSampler(ModelSampler):
    """See the module's docstring. `startup`: untried points drawn uniformly before the model
    proposes; `ridge`: the ridge penalty on the standardised metric."""

    def __init__(self, seed: int | None = None, startup: int = 10, ridge: float = 0.1) -> None:
        super().__init__(seed)  # a parameter outside the model: none (validated)
        self._rng = np.random.default_rng(seed)
        self.startup = startup
        self.ridge = ridge

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        super().reseed_rng()

    def models(self, dist: BaseDistribution) -> bool:
        return choices(dist) is not None

    def propose(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        names = list(search_space)
        values = [choices(search_space[n]) or [] for n in names]
        sizes = [len(v) for v in values]
        told, scores, seen = [], [], set()
        for t in study._get_trials(deepcopy=False, use_cache=True):
            if t.number == trial.number or not all(n in t.params for n in names):
                continue
            where = [position(search_space[n], t.params[n], sizes[j]) for j, n in enumerate(names)]
            if any(i is None for i in where):  # a value off the grid (the space changed)
                continue
            point = tuple(i for i in where if i is not None)
            seen.add(point)
            if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value):
                told.append(point)
                scores.append(t.value if study.direction == StudyDirection.MAXIMIZE else -t.value)
        point = self._best_untried(told, scores, seen, sizes)
        if point is None:  # every point tried
            return {}
        return {n: values[j][i] for j, (n, i) in enumerate(zip(names, point, strict=True))}

    def _best_untried(
        self,
        told: list[tuple[int, ...]],
        scores: list[float],
        seen: set[tuple[int, ...]],
        sizes: list[int],
    ) -> tuple[int, ...] | None:
        total = math.prod(sizes)
        if len(seen) >= total:
            return None
        if total <= ENUMERATE:  # every point, in the order of their mixed-radix codes
            untried = np.ones(total, dtype=bool)
            if seen:
                untried[np.ravel_multi_index(np.array(sorted(seen)).T, sizes)] = False
            pool = np.stack(np.unravel_index(np.flatnonzero(untried), sizes), axis=1)
        else:
            pool = self._pool(told, scores, sizes)
            pool = pool[np.array([tuple(p) not in seen for p in pool.tolist()], dtype=bool)]
        if not len(pool):
            return None
        if len(told) < self.startup or len(set(scores)) < 2:  # nothing to model yet
            return tuple(int(i) for i in pool[self._rng.integers(len(pool))])
        weights = fit(features(np.array(told), sizes), np.array(scores, dtype=float), self.ridge)
        best, best_score = 0, -math.inf
        chunk = max(64, SCORED_AT_ONCE // len(weights))
        for start in range(0, len(pool), chunk):
            predicted = features(pool[start : start + chunk], sizes) @ weights
            # ties (a model that cannot tell points apart) broken at random, reproducibly
            predicted = predicted + 1e-9 * self._rng.random(len(predicted))
            k = int(np.argmax(predicted))
            if predicted[k] > best_score:
                best, best_score = start + k, float(predicted[k])
        return tuple(int(i) for i in pool[best])

    def _pool(self, told: list[tuple[int, ...]], scores: list[float], sizes: list[int]) -> np.ndarray:
        """Random points, and every one-value neighbour of the ten best points tried."""
        rows = [self._rng.integers(0, sizes, size=(POOL, len(sizes)))]
        for k in np.argsort(scores)[::-1][:10]:
            for j, size in enumerate(sizes):
                near = np.repeat(np.array(told[k])[None, :], size, axis=0)
                near[:, j] = np.arange(size)
                rows.append(near)
        return np.unique(np.concatenate(rows), axis=0)
