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
    """The base of a sampler that models together the parameters `models` accepts (`propose`) and
    draws the rest at random. `_search_space` is the cache `Search` keeps across proposals."""

    def __init__(self, seed: int | None) -> None:
        self._random = RandomSampler(seed=seed)
        self._search_space = IntersectionSearchSpace()

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    def models(self, dist: BaseDistribution) -> bool:
        """Whether the model covers a parameter of this distribution."""
        raise NotImplementedError

    def propose(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """The modelled parameters' values for `trial` (`search_space` is never empty)."""
        raise NotImplementedError

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, BaseDistribution]:
        space = self._search_space.calculate(study)
        return {n: d for n, d in sorted(space.items()) if self.models(d)}

    def sample_relative(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.propose(study, trial, search_space) if search_space else {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)
