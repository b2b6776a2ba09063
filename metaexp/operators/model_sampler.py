"""What metaexp's own samplers (surrogate, lq-cmaes) share: a relative sampler over the parameters
its model covers, Optuna's search-space cache, and Optuna's TPE for any parameter outside the model
(each on its own, learned from every trial: lq-cmaes's categoricals)."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.search_space import IntersectionSearchSpace


class ModelSampler(BaseSampler):
    """The base of a sampler that models together the parameters `models` accepts (`propose`) and
    samples each of the rest with TPE. `_search_space` is the cache `Search` keeps across proposals."""

    def __init__(self, seed: int | None) -> None:
        self._independent = independent_sampler(seed)
        self._search_space = IntersectionSearchSpace()

    def reseed_rng(self) -> None:
        self._independent.reseed_rng()

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
        return self._independent.sample_independent(study, trial, param_name, param_distribution)


def independent_sampler(seed: int | None) -> BaseSampler:
    """What samples a parameter a relative sampler leaves out (a categorical beside CMA-ES): TPE on
    that parameter alone, which learns which value pays from every trial; Optuna's CMA-ES and
    lq-cmaes draw it uniformly at random by default, whatever the trials say."""
    return TPESampler(seed=seed)
