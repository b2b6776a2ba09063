"""The spec's `meta:` block: what the outer study optimises and how it prunes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from metaexp.spec.base import _Strict

# The outer objectives, each a function of an inner run's records (see trial.py).
OBJECTIVES = {
    "best": "the inner run's best decision value after its budget",
    "auc": "the mean of the best-so-far curve over the budget (area under it / N); rewards early gains",
    "experiments_to_target": "experiments until the best reached meta.target (budget + 1 if never)",
    "cost_usd": "LLM dollars the inner run spent",
    "wall_s": "the inner run's wall-clock seconds",
}
Objective = Literal["best", "auc", "experiments_to_target", "cost_usd", "wall_s"]


class PrunerSpec(_Strict):
    kind: Literal["median", "successive_halving", "hyperband", "none"] = "median"
    startup_trials: int = Field(3, ge=0, description="median: outer trials that finish before any prune")
    warmup_steps: int = Field(3, ge=0, description="median: inner experiments before a run can be pruned")
    min_resource: int | Literal["auto"] = Field(
        "auto",
        description="successive_halving, hyperband: experiments at rung 0; auto: a quarter of an outer "
        "trial's inner experiments (budget.max_experiments x meta.repeats)",
    )
    reduction_factor: int = Field(3, ge=2, description="successive_halving, hyperband")

    @field_validator("min_resource", mode="before")
    @classmethod
    def _experiments_or_auto(cls, value: Any) -> Any:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError(f"min_resource {value!r}: a number of experiments (at least 1), or auto")

    def rung0(self, experiments: int) -> int:
        """Experiments at the first rung, for outer trials of `experiments` inner experiments. auto: a
        quarter of them. A best-so-far after 2 or 3 of 20 experiments says little: successive
        halving from there kept 1-2 of 16 trials and picked worse strategies (bench/meta_pruning.py)."""
        if self.min_resource == "auto":
            return max(1, experiments // 4)
        return int(self.min_resource)


class MetaSpec(_Strict):
    tag: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,55}$", description="default: <tag>-meta"
    )
    space: str | None = Field(None, description="the strategy space YAML (metaexp meta --space overrides)")
    trials: int = Field(20, ge=1, description="outer trials in all (failed and pruned ones count)")
    objectives: list[Objective] = Field(
        default_factory=lambda: ["best"], min_length=1, description="several: a multi-objective study"
    )
    target: float | None = Field(None, description="experiments_to_target: default budget.target")
    pruner: PrunerSpec | None = Field(None, description="default: median (one objective), none (several)")
    repeats: int = Field(1, ge=1, description="inner seeds per sampled strategy; the outer value is the mean")
    reevaluate: int = Field(
        3, ge=0, description="the best outer trials re-run on fresh seeds before the best is named; 0: none"
    )
    reevaluate_seeds: int = Field(3, ge=1, description="fresh inner seeds each re-evaluated pick runs on")
    parallel: int = Field(1, ge=1, description="outer trials at once (Ray tasks when more than 1)")
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = Field(0, description="the outer sampler's seed")

    @field_validator("pruner", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _prunable(self) -> MetaSpec:
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"meta.objectives: each at most once (got {self.objectives})")
        if len(self.objectives) > 1 and self.pruner is not None and self.pruner.kind != "none":
            raise ValueError(
                f"meta.pruner {self.pruner.kind!r}: Optuna cannot prune multi-objective studies "
                f"({len(self.objectives)} objectives); set meta.pruner: none or keep one objective"
            )
        return self

    @property
    def pruner_or_default(self) -> PrunerSpec:
        if self.pruner is not None:
            return self.pruner
        return PrunerSpec(kind="median" if len(self.objectives) == 1 else "none")
