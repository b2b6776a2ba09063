"""What metaexp's own samplers (surrogate, lq-cmaes) share: a relative sampler over the parameters
its model covers, Optuna's search-space cache, and a random draw for any parameter outside the
model."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace


class ModelSampler(BaseSampler):
    """The base of a sampler that models some parameters together (`sample_relative`) and draws
    the rest at random. `_search_space` is the cache `Search` keeps across proposals."""

    def __init__(self, seed: int | None) -> None:
        self._random = RandomSampler(seed=seed)
        self._search_space = IntersectionSearchSpace()

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)
