"""The spec: one YAML file, validated with pydantic; unknown keys are errors."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from metaexp.errors import SpecError
from metaexp.meta.spec import MetaSpec
from metaexp.spec.objective import ObjectiveModeSpec

TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricSpec(_Strict):
    direction: Literal["minimize", "maximize"] = "minimize"
    pattern: str | None = Field(
        None, description="regex with one group; default '^<name>:\\s*(number)', last match"
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        import re

        if value is None:
            return value
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if compiled.groups < 1:
            raise ValueError("needs one capture group around the number, e.g. 'loss:\\s*(\\S+)'")
        return value


class _Command(_Strict):
    """A program the supervisor runs in a candidate's sandbox: the harness, a cascade stage, a validation."""

    command: str | list[str] = Field(
        description="shlex string or argv list; runs in the candidate tree's root"
    )
    timeout_s: float = Field(
        60.0, gt=0, description="then SIGTERM, grace, SIGKILL to every process it started"
    )

    @field_validator("command")
    @classmethod
    def _names_a_program(cls, value: str | list[str]) -> str | list[str]:
        if not argv_of(value):
            raise ValueError("must name a program, e.g. 'python evaluate.py'")
        return value

    @property
    def argv(self) -> list[str]:
        return argv_of(self.command)


class CascadeStageSpec(_Command):
    """A cheap check before the full harness (OpenEvolve's cascade, seed 004's proxy metric).

    Without `metric` the stage passes when its command exits 0; with it, the metric (read
    like the run's metrics) must also be within `min`/`max`.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    metric: str | None = Field(None, description="printed as 'NAME: value' (or a declared metric's pattern)")
    min: float | None = None
    max: float | None = None
    timeout_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _threshold_needs_metric(self) -> CascadeStageSpec:
        if (self.min is not None or self.max is not None) and not self.metric:
            raise ValueError(f"cascade stage {self.name!r}: min/max need `metric`")
        if self.metric and self.min is None and self.max is None:
            raise ValueError(f"cascade stage {self.name!r}: a metric needs a threshold (min: or max:)")
        return self


class ValidationSpec(_Command):
    """A held-out harness (against overfitting the eval): run on each new best, never decides."""

    metrics: dict[str, MetricSpec] | list[str] = Field(min_length=1)

    @property
    def metric_specs(self) -> dict[str, MetricSpec]:
        if isinstance(self.metrics, list):
            return {name: MetricSpec() for name in self.metrics}
        return dict(self.metrics)


class HarnessSpec(_Command):
    immutable: list[str] = Field(
        default_factory=list, description="paths/globs hashed at start; a change refuses the candidate"
    )
    time_budget_s: float = Field(10.0, gt=0, description="exported as METAEXP_TIME_BUDGET")
    grace_s: float = Field(3.0, ge=0, description="seconds between SIGTERM and SIGKILL")
    memory_mb: float | None = Field(None, gt=0, description="limit on the harness's total resident memory")
    pass_env: list[str] = Field(
        default_factory=list, description="variables passed although they look secret"
    )
    strip_env: list[str] = Field(default_factory=list, description="more variable names to remove")
    env: dict[str, str] = Field(default_factory=dict, description="extra variables for the harness")
    cascade: list[CascadeStageSpec] = Field(
        default_factory=list, description="cheap stages run first; a candidate failing one skips the rest"
    )
    validation: ValidationSpec | None = Field(
        None, description="a held-out harness run on every new best (its metrics go into the row)"
    )


def argv_of(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


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


class PricesSpec(_Strict):
    input_per_mtok: float = Field(0.0, ge=0, description="USD per million prompt tokens")
    output_per_mtok: float = Field(0.0, ge=0, description="USD per million completion tokens")
    cached_input_per_mtok: float | None = Field(None, ge=0, description="default: as input")


class TuneSpec(_Strict):
    """hybrid: how an LLM candidate's numeric constants are tuned before it is judged."""

    sampler: Literal["tpe", "cmaes", "random", "gp"] = "cmaes"
    budget: int = Field(8, ge=0, description="evaluations per candidate, its own values first; 0: none")


class ScheduleSpec(_Strict):
    """hybrid: the share of proposals from each arm, drawn per proposal."""

    llm: float = Field(0.3, ge=0, description="an LLM edit (llm: null: a bold restart), then tuning")
    params: float = Field(0.7, ge=0, description="one numeric step of Optuna over the constants")

    @model_validator(mode="after")
    def _some_share(self) -> ScheduleSpec:
        if self.llm + self.params <= 0:
            raise ValueError("schedule: llm and params shares must sum to more than 0")
        return self


class OperatorSpec(_Strict):
    kind: Literal["params", "perturb", "llm", "hybrid"] = "perturb"
    space: str | None = Field(None, description="search space YAML; params: required")
    sampler: Literal["tpe", "cmaes", "random", "gp"] = "tpe"
    style: str | dict[str, float] = Field("conservative", description="a style name or {name: weight}")
    # --- llm
    model: str | None = Field(None, description="llm: the model name the endpoint knows")
    base_url: str | None = Field(None, description="llm: e.g. http://localhost:11434/v1; null: OpenAI")
    api_key_env: str = Field("OPENAI_API_KEY", description="llm: the variable that holds the key")
    temperature: float = Field(0.7, ge=0, le=2)
    timeout_s: float = Field(120.0, gt=0, description="llm: per request, before the client's retries")
    max_retries: int = Field(2, ge=0, description="llm: the client's retries for 429, 5xx, timeouts")
    edit_format: Literal["diff", "rewrite"] = "diff"
    program: str | None = Field(None, description="llm: the human's research directions, re-read each time")
    notes_every: int | None = Field(10, ge=1, description="llm: reflect into notes.md every N experiments")
    history: int = Field(30, ge=0, description="llm: past experiments shown in the prompt")
    retry_invalid: bool = Field(True, description="llm: ask again, with the error, if a reply fails")
    max_file_bytes: int = Field(1_000_000, gt=0, description="llm: larger edited files are rejected")
    prices: PricesSpec = PricesSpec()
    warm_start: str | None = Field(None, description="llm: notes file or earlier tag to seed notes.md")
    replay: str | None = Field(None, description="llm: answer from this recording (llm.jsonl) instead")
    replay_key: Literal["request", "state"] = "request"
    replay_miss: Literal["error", "live"] = "error"
    # --- hybrid
    llm: OperatorSpec | None = Field(None, description="hybrid: the llm operator's settings; null: offline")
    tune: TuneSpec = TuneSpec()
    schedule: ScheduleSpec = ScheduleSpec()

    @model_validator(mode="before")
    @classmethod
    def _hybrid_llm(cls, data: Any) -> Any:
        """hybrid's `llm:` block is an llm operator; its key variable is the one the harness never sees."""
        hybrid = isinstance(data, dict) and data.get("kind") == "hybrid"
        if not hybrid or not isinstance(data.get("llm"), dict):
            return data
        if data["llm"].get("kind", "llm") != "llm":
            raise ValueError("operator.llm holds the llm operator's settings: leave `kind` out of it")
        llm = {**data["llm"], "kind": "llm"}
        data = {**data, "llm": llm}
        if "api_key_env" in llm:
            data.setdefault("api_key_env", llm["api_key_env"])
        return data

    @model_validator(mode="after")
    def _kind_needs(self) -> OperatorSpec:
        if self.kind == "params" and not self.space:
            raise ValueError("operator.kind 'params' needs operator.space (a search space YAML)")
        if self.kind == "llm" and not self.model:
            raise ValueError("operator.kind 'llm' needs operator.model (e.g. gpt-5-mini)")
        if self.llm is not None and (self.kind != "hybrid" or self.llm.kind != "llm"):
            raise ValueError("operator.llm is a block of llm settings for operator.kind hybrid only")
        if self.llm is not None and self.llm.api_key_env != self.api_key_env:
            raise ValueError("operator.api_key_env and operator.llm.api_key_env differ: set it once, in llm")
        weights = self.style.values() if isinstance(self.style, dict) else [1.0]
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError("a style mix needs non-negative weights that sum to more than 0")
        return self


class MigrationSpec(_Strict):
    every: int = Field(10, ge=1, description="an island's experiments between migrations")
    count: int = Field(1, ge=1, description="individuals sent each time")
    topology: Literal["ring"] = "ring"


class EscapeSpec(_Strict):
    patience: int = Field(8, ge=1, description="experiments without improvement before escaping")
    action: Literal["restart_from_hall_of_fame", "bold_mutation", "random_restart"] = "bold_mutation"


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


class StrategySpec(_Strict):
    name: str = "custom"
    explore_rate: float = Field(0.0, ge=0, le=1, description="probability to accept a worse change")
    explore_every: int | None = Field(None, ge=1, description="every Nth experiment accepts regardless")
    islands: int | list[IslandSpec] = Field(1, description="number of islands, or one override block each")
    population: int = Field(1, ge=1, description="individuals kept per island")
    selection: Literal["tournament", "best", "nsga2", "map_elites"] = "tournament"
    tournament_size: int = Field(3, ge=1)
    migration: MigrationSpec | None = None
    escape: EscapeSpec | None = None
    crossover_rate: float = Field(0.0, ge=0, le=1)
    features: list[FeatureSpec] = Field(default_factory=list, description="map_elites descriptors")

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


class RaySpec(_Strict):
    address: str | None = Field(None, description='null: a local Ray; "auto" or host:port: a cluster')
    max_concurrent_evals: int = Field(4, ge=1)
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
    abort_on_consecutive_crashes: int | None = Field(3, ge=1)
    max_invalid_streak: int | None = Field(10, ge=1)
    target: float | None = Field(None, description="stop once the best reaches this value")
    max_cost_usd: float | None = Field(None, gt=0, description="llm: stop before a call that would pass it")
    max_evaluations: int | None = Field(
        None, ge=1, description="harness runs in all, repeats and hybrid tuning runs included"
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


def load_spec(path: str | Path) -> Spec:
    """Read, resolve presets, validate. Every error names the file and the key path."""
    from metaexp.resources import resolve_data_file

    path = Path(path)
    data = _read_yaml_mapping(path)
    strategy = data.get("strategy")
    if isinstance(strategy, str):
        strategy_path = resolve_data_file(strategy, path.parent)
        if strategy_path is None:
            raise SpecError(f"{path}: strategy: file {strategy!r} not found (nor among metaexp's presets)")
        data["strategy"] = {"name": strategy_path.stem, **_read_yaml_mapping(strategy_path)}
    data["root"] = path.parent.resolve()
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(path, exc)) from None


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: must be a YAML mapping of keys (tag:, target:, harness:, ...)")
    return data


def format_validation_error(path: Path, exc: ValidationError, prefix: str = "") -> str:
    """`prefix` is the key path of the validated part inside the file, e.g. 'LEARNING_RATE'."""
    lines = [f"{path}: {exc.error_count()} problem(s):"]
    for err in exc.errors():
        where = ".".join([prefix] * bool(prefix) + [str(part) for part in err["loc"]])
        where = where or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key (check its spelling; `metaexp schema` lists valid keys)")
        elif err["type"] == "missing":
            lines.append(f"  {where}: required key is missing")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:  # a check across keys: its message names them
                lines.append(f"  {prefix + ': ' if prefix else ''}{msg}")
            else:
                lines.append(f"  {where}: {msg} (got {err.get('input')!r})")
    return "\n".join(lines)


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    schema["properties"]["strategy"] = {
        "anyOf": [{"type": "string", "description": "a preset file"}, schema["properties"]["strategy"]]
    }
    schema["properties"].pop("root", None)
    return schema
