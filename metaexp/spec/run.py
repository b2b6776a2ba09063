"""The run's spec as a whole (`Spec`), its noise/budget/ray blocks, and a pipeline's stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from metaexp.meta.spec import MetaSpec
from metaexp.spec.artifacts import ArtifactsSpec
from metaexp.spec.base import _Strict
from metaexp.spec.harness import HarnessSpec, MetricSpec
from metaexp.spec.objective import ObjectiveModeSpec
from metaexp.spec.operator import OperatorSpec
from metaexp.spec.strategy import StrategySpec

TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

ObjectiveSpec = ObjectiveModeSpec  # every dual/multi-metric mode: see spec/objective.py


class SPRTSpec(_Strict):
    alpha: float = Field(0.05, gt=0, lt=1)
    beta: float = Field(0.2, gt=0, lt=1)
    delta: float = Field(0.01, gt=0, description="the smallest gain worth keeping, in the metric's units")
    min_runs: int = Field(7, ge=2, description="warm-up; 7 holds the error rates (bench/noise.py)")
    max_runs: int = Field(30, ge=2)


class NoiseSpec(_Strict):
    method: Literal["none", "batched", "sprt"] = "none"
    seeds: Literal["paired"] = "paired"  # candidate and incumbent run on the same METAEXP_SEED values
    repeats: int = Field(5, ge=1, description="batched: runs per candidate")
    sprt: SPRTSpec = SPRTSpec()
    reevaluate_elites: bool = Field(
        False,
        description="a change that wins is re-run on fresh seeds before it is kept; one that "
        "does not hold up is recorded confirmed: false and dropped",
    )

    @model_validator(mode="after")
    def _elites_need_repeats(self) -> NoiseSpec:
        if self.reevaluate_elites and self.method == "none":
            raise ValueError(
                "noise.reevaluate_elites re-runs a winner's test: it needs method sprt or batched"
            )
        return self


class RaySpec(_Strict):
    address: str | None = Field(None, description='null: a local Ray; "auto" or host:port: a cluster')
    max_concurrent_evals: int = Field(4, ge=1)
    schedule: Literal["async", "ordered"] = Field(
        "async",
        description="a population's order: async records evaluations as they finish (throughput); "
        "ordered records them as asked, so the records depend on the seed only (studies use it)",
    )
    eval_resources: dict[str, Any] = Field(
        default_factory=lambda: {"num_cpus": 1}, description="Ray task options: num_cpus, num_gpus, resources"
    )

    @field_validator("eval_resources")
    @classmethod
    def _known(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = set(value) - {"num_cpus", "num_gpus", "memory", "resources", "accelerator_type"}
        if unknown:
            raise ValueError(f"unknown resource option(s) {sorted(unknown)}: num_cpus, num_gpus, resources")
        return value


class BudgetSpec(_Strict):
    max_experiments: int | None = Field(50, ge=1)
    max_wall_clock_h: float | None = Field(8.0, gt=0)
    abort_on_consecutive_crashes: int | None = Field(
        3,
        ge=1,
        description="abort after this many crashes/timeouts in a row once a failed change's parent, "
        "run again (a probe), fails too; if the parent runs, the changes fail, not the harness: go on",
    )
    max_invalid_streak: int | None = Field(10, ge=1)
    target: float | None = Field(None, description="stop once the best reaches this value")
    max_cost_usd: float | None = Field(None, gt=0, description="llm: stop before a call that would pass it")
    max_evaluations: int | None = Field(
        None, ge=1, description="harness runs in all, repeats and hybrid tuning runs included"
    )
    max_proposals: int | None = Field(
        None,
        ge=1,
        description="records in all, those never run included (duplicates, invalid, rejected): a "
        "strategy cannot buy progress with free proposals (metaexp study: 3 x max_experiments)",
    )


class StageSpec(_Strict):
    """One stage of a pipeline: its own target and objective, from the previous stage's best."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    target: list[str] = Field(min_length=1)
    objective: ObjectiveSpec | None = None
    budget: BudgetSpec | None = None
    metrics: dict[str, MetricSpec] | None = None
    harness: HarnessSpec | None = None
    operator: OperatorSpec | None = None

    @field_validator("target", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Spec(_Strict):
    tag: str = Field(pattern=TAG_PATTERN)
    start: str = "HEAD"
    target: list[str] = Field(min_length=1)
    harness: HarnessSpec
    metrics: dict[str, MetricSpec] = Field(min_length=1, max_length=3)
    objective: ObjectiveSpec
    operator: OperatorSpec = OperatorSpec()
    strategy: StrategySpec = StrategySpec(name="hill_climb")
    budget: BudgetSpec = BudgetSpec()
    ray: RaySpec = RaySpec()
    noise: NoiseSpec = NoiseSpec()
    storage: str | None = None
    artifacts: ArtifactsSpec = Field(
        ArtifactsSpec(),
        description="where each try's diff, log tail and changed files are kept (Optuna artifacts)",
    )
    seed: int = 0
    meta: MetaSpec | None = Field(None, description="metaexp meta: the outer study over strategies")
    pipeline: list[StageSpec] | None = Field(
        None, description="stages run in order, each from the previous stage's best, earlier targets frozen"
    )
    frozen: dict[str, str] = Field(
        default_factory=dict, description="set by a pipeline: file -> the earlier stage that owns it"
    )
    # Where the spec file lives; relative paths in it resolve from here.
    root: Path = Field(Path("."), exclude=True)

    @field_validator("start")
    @classmethod
    def _revision(cls, value: str) -> str:
        """A commit, branch or tag name: git takes no control characters, the OS no NUL byte."""
        if not value or len(value) > 256 or any(ord(c) < 32 or c == "\x7f" for c in value):
            raise ValueError("not a commit, branch or tag name (empty, too long or a control character)")
        return value

    @field_validator("target", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _pipeline_defaults(cls, data: Any) -> Any:
        """A pipeline needs no top-level target or objective: all stages' targets, the first's objective."""
        stages = data.get("pipeline") if isinstance(data, dict) else None
        if not isinstance(stages, list) or not all(isinstance(st, dict) for st in stages) or not stages:
            return data
        data = dict(data)
        if "target" not in data:
            targets = [st.get("target") for st in stages]
            data["target"] = [t for ts in targets for t in ([ts] if isinstance(ts, str) else ts or [])]
        if "objective" not in data and stages[0].get("objective") is not None:
            data["objective"] = stages[0]["objective"]
        return data

    @model_validator(mode="after")
    def _objective_names_metrics(self) -> Spec:
        errors = self.objective.validate_against(self.metrics)
        if errors:
            raise ValueError("; ".join(errors))
        if self.noise.method != "none" and self.objective.mode == "pareto":
            raise ValueError(
                "noise.method: the sequential test compares one value per seed; objective.mode pareto has "
                "several (use weighted or primary_secondary with noise)"
            )
        pareto_ok = ("nsga2", "map_elites")
        if (
            self.objective.mode == "pareto"
            and self.strategy.is_population
            and self.strategy.selection not in pareto_ok
        ):
            raise ValueError(
                f"objective.mode pareto in a population selects with NSGA-II: set strategy.selection: nsga2 "
                f"(got {self.strategy.selection})"
            )
        if self.pipeline:
            self._check_pipeline(self.pipeline)
        return self

    def _check_pipeline(self, stages: list[StageSpec]) -> None:
        names = [stage.name for stage in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"pipeline: stage names must differ, got {names}")
        owner: dict[str, str] = {}
        for i, stage in enumerate(stages):
            again = [t for t in stage.target if t in owner]
            if again:
                raise ValueError(
                    f"pipeline.{i} ({stage.name}): target {again} belongs to stage {owner[again[0]]!r}, "
                    "which is frozen by then"
                )
            try:
                stage_spec(self, i, self.start)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or '(stage)'}: {e['msg'].removeprefix('Value error, ')}"
                    for e in exc.errors()
                )
                raise ValueError(f"pipeline.{i} ({stage.name}): {problems}") from None
            owner.update({t: stage.name for t in stage.target})

    @property
    def direction(self) -> str:
        """The direction of the decision value: the weighted score is maximised; else the primary's."""
        if self.objective.mode == "weighted":
            return "maximize"
        return self.metrics[self.objective.primary].direction

    @property
    def directions(self) -> dict[str, str]:
        return {name: metric.direction for name, metric in self.metrics.items()}


def stage_spec(spec: Spec, i: int, start: str) -> Spec:
    """The run of pipeline stage i: tag <tag>-<name>, from `start`, earlier stages' targets frozen."""
    assert spec.pipeline is not None
    stage = spec.pipeline[i]
    data = spec.model_dump(exclude={"pipeline", "frozen"})
    data.update({"tag": f"{spec.tag}-{stage.name}", "start": start, "target": stage.target})
    for key in ("objective", "budget", "metrics", "harness", "operator"):
        override = getattr(stage, key)
        if override is not None:
            data[key] = (
                override.model_dump()
                if key != "metrics"
                else {k: m.model_dump() for k, m in override.items()}
            )
    data["frozen"] = {t: earlier.name for earlier in spec.pipeline[:i] for t in earlier.target}
    data["root"] = spec.root
    return Spec.model_validate(data)
