"""The `strategy:` block (or a preset file): islands, population, selection, migration, escape."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from metaexp.spec.base import _Strict
from metaexp.spec.operator import ScheduleSpec


class MigrationSpec(_Strict):
    every: int = Field(10, ge=1, description="an island's experiments between migrations")
    count: int = Field(1, ge=1, description="individuals sent each time")
    topology: Literal["ring"] = "ring"


class EscapeSpec(_Strict):
    patience: int = Field(8, ge=1, description="experiments without improvement before escaping")
    action: Literal["restart_from_hall_of_fame", "bold_mutation", "random_restart"] = "bold_mutation"
    converged: float = Field(
        0.01,
        gt=0,
        le=1,
        description="params + cmaes, restarts: leave a search only once its newest generation spans "
        "less than this share of every range (IPOP restarts converged searches); 1: patience alone",
    )


class FeatureSpec(_Strict):
    """A MAP-Elites descriptor: a metric the harness prints, or the target's size in lines."""

    metric: str | None = None
    lines: bool = False
    low: float
    high: float
    bins: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> FeatureSpec:
        if bool(self.metric) == self.lines:
            raise ValueError("a feature is either `metric: NAME` or `lines: true`")
        if not self.low < self.high:
            raise ValueError("needs low < high")
        return self


class IslandSpec(_Strict):
    """Per-island overrides: islands may work on different aspects."""

    target: list[str] | None = None
    style: str | dict[str, float] | None = None
    program: str | None = None
    schedule: ScheduleSpec | None = Field(
        None, description="hybrid: this island's share of LLM and numeric steps"
    )
    model: str | None = Field(None, description="llm, hybrid: the model this island asks (of all)")


def _selection_enum(schema: dict[str, Any]) -> None:
    """The JSON Schema lists the selections registered where it is generated, plugins included."""
    from metaexp.decide.selections import selection_names

    schema["enum"] = selection_names()


class StrategySpec(_Strict):
    name: str = "custom"
    explore_rate: float = Field(0.0, ge=0, le=1, description="probability to accept a worse change")
    explore_every: int | None = Field(None, ge=1, description="every Nth experiment accepts regardless")
    explore_ties: bool = Field(
        False,
        description="a single lineage accepts a change that ties its parent as an explore step "
        "(a walk across a plateau; objective.ties: keep counts it as a keep instead)",
    )
    islands: int | list[IslandSpec] = Field(1, description="number of islands, or one override block each")
    population: int = Field(1, ge=1, description="individuals kept per island")
    selection: str = Field(
        "tournament",
        description="parents and survivors: tournament, best, nsga2, map_elites (an archive of "
        "strategy.features cells), or one a plugin registers (entry-point group metaexp.selections)",
        json_schema_extra=_selection_enum,
    )
    tournament_size: int = Field(3, ge=1)
    migration: MigrationSpec | None = None
    escape: EscapeSpec | None = None
    crossover_rate: float = Field(0.0, ge=0, le=1)
    initial: Literal["baseline", "random"] = Field(
        "baseline",
        description="where an island's population starts: around the baseline (its children), or "
        "random: its first population - 1 children are points drawn uniformly from the operator's "
        "space (perturb, params; other operators start from the baseline), so selection and "
        "crossover start from diverse members",
    )
    features: list[FeatureSpec] = Field(default_factory=list, description="map_elites descriptors")
    novelty: float = Field(
        0.0,
        ge=0,
        le=1,
        description="skip a candidate whose declared values lie this close to an evaluated one (unit "
        "cube of the space, RMS per dimension); 0: only exact duplicates are skipped",
    )

    @field_validator("selection")
    @classmethod
    def _registered(cls, value: str) -> str:
        from metaexp.decide.selections import ARCHIVES, selections

        registry = selections()
        if value not in registry and value not in ARCHIVES:
            raise ValueError(registry.unknown(also=ARCHIVES))
        return value

    @property
    def island_count(self) -> int:
        return self.islands if isinstance(self.islands, int) else len(self.islands)

    @property
    def is_population(self) -> bool:
        """More than autoresearch's single lineage: runs on Ray, with island branches."""
        return self.island_count > 1 or self.population > 1 or self.selection == "map_elites"

    @model_validator(mode="after")
    def _consistent(self) -> StrategySpec:
        if self.island_count < 1:
            raise ValueError("islands: at least 1")
        if self.selection == "map_elites" and not self.features:
            raise ValueError("selection map_elites needs strategy.features (the grid's descriptors)")
        return self
