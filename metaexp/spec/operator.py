"""The `operator:` block: what proposes the changes (params, perturb, llm, hybrid, or a plugin's) and
its settings."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from metaexp.spec.base import _Strict

STYLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class PricesSpec(_Strict):
    input_per_mtok: float = Field(0.0, ge=0, description="USD per million prompt tokens")
    output_per_mtok: float = Field(0.0, ge=0, description="USD per million completion tokens")
    cached_input_per_mtok: float | None = Field(None, ge=0, description="default: as input")


class TuneSpec(_Strict):
    """hybrid: how an LLM candidate's numeric constants are tuned before it is judged."""

    sampler: Literal["tpe", "cmaes", "random", "gp"] = "cmaes"
    budget: int = Field(8, ge=0, description="evaluations per candidate, its own values first; 0: none")


class ScheduleSpec(_Strict):
    """hybrid: each arm's share of the evaluations (or, with `counts: proposals`, of the proposals),
    drawn per proposal."""

    llm: float = Field(0.3, ge=0, description="an LLM edit (llm: null: a bold restart), then tuning")
    params: float = Field(0.7, ge=0, description="one numeric step of Optuna over the constants")
    counts: Literal["evaluations", "proposals"] = Field(
        "evaluations",
        description="what the shares are of: harness runs (an edit costs its tuning budget), or proposals",
    )

    @model_validator(mode="after")
    def _some_share(self) -> ScheduleSpec:
        if self.llm + self.params <= 0:
            raise ValueError("schedule: llm and params shares must sum to more than 0")
        return self


def _kind_enum(schema: dict[str, Any]) -> None:
    """The JSON Schema lists the operators registered where it is generated, plugins included."""
    from metaexp.operators import operators

    schema["enum"] = operators().names()


class ModelSpec(_Strict):
    """One of several models the llm operator asks (`operator.models`)."""

    model: str = Field(description="the model name its endpoint knows")
    base_url: str | None = Field(None, description="its endpoint; default operator.base_url")
    weight: float = Field(1.0, gt=0, description="choice: weighted: its share of the proposals")
    prices: PricesSpec | None = Field(None, description="its prices; default operator.prices")


class OperatorSpec(_Strict):
    kind: str = Field(
        "perturb",
        description="the operator: params, perturb, llm, hybrid, or one a plugin registers "
        "(entry-point group metaexp.operators)",
        json_schema_extra=_kind_enum,
    )
    space: str | None = Field(None, description="search space YAML; params: required")
    sampler: Literal["tpe", "cmaes", "lq-cmaes", "random", "gp", "surrogate"] = Field(
        "tpe",
        description="params: tpe, cmaes, lq-cmaes (CMA-ES whose candidates a linear-quadratic model "
        "screens: fewer evaluations a generation), random, gp (needs torch), or surrogate (discrete "
        "spaces: a pairwise model of the metric proposes the untried point it scores best)",
    )
    style: str | dict[str, float] = Field(
        "conservative",
        description="a style name or {name: weight}; params: default global (the sampler's own suggestion)",
    )
    # --- llm
    model: str | None = Field(None, description="llm: the model name the endpoint knows")
    base_url: str | None = Field(None, description="llm: e.g. http://localhost:11434/v1; null: OpenAI")
    models: list[ModelSpec] = Field(
        default_factory=list,
        description="llm: several models instead of `model`, one chosen per proposal by `choice`",
    )
    choice: Literal["weighted", "bandit"] = Field(
        "weighted",
        description="llm with models: draw by weight, or a UCB bandit rewarded by improvement per dollar",
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="llm: the variable that holds the key")
    temperature: float = Field(0.7, ge=0, le=2, description="llm: sent with every request")
    max_tokens: int | None = Field(
        4096,
        gt=0,
        description="llm: the reply's token limit, sent with every request (a reasoning model's "
        "thinking counts too); null: none sent, the endpoint's own",
    )
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
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="a plugin operator's own settings (its Context's spec.operator.options); "
        "the built-ins take theirs as keys of operator",
    )
    # --- hybrid
    llm: OperatorSpec | None = Field(None, description="hybrid: the llm operator's settings; null: offline")
    tune: TuneSpec = TuneSpec()
    schedule: ScheduleSpec = ScheduleSpec()

    @field_validator("kind")
    @classmethod
    def _registered(cls, value: str) -> str:
        """A built-in operator, or one an installed plugin registers."""
        from metaexp.operators import operators

        registry = operators()
        if value not in registry:
            raise ValueError(registry.unknown())
        return value

    @field_validator("style")
    @classmethod
    def _style_names(cls, value: str | dict[str, float]) -> str | dict[str, float]:
        """A style is a name (strategies/styles/<name>.yaml), never a path."""
        for name in [value] if isinstance(value, str) else value:
            if not STYLE_NAME.fullmatch(name):
                raise ValueError(
                    "not a style name (letters, digits, _ and -, at most 64: "
                    "strategies/styles/<name>.yaml in the project or shipped)"
                )
        return value

    @model_validator(mode="before")
    @classmethod
    def _params_style(cls, data: Any) -> Any:
        """params takes the sampler's suggestion whole unless a style says otherwise: a style that
        narrows it (conservative: one value, a fifth of its range) turns any sampler into coordinate
        hill climbing, which a user asking for cmaes or tpe does not expect."""
        if isinstance(data, dict) and data.get("kind") == "params" and "style" not in data:
            return {**data, "style": "global"}
        return data

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
        if self.kind == "llm" and not self.model and not self.models:
            raise ValueError("operator.kind 'llm' needs operator.model (e.g. gpt-5-mini) or operator.models")
        if self.model and self.models:
            raise ValueError("operator.model and operator.models: give one (models: a list of {model, ...})")
        if len({m.model for m in self.models}) < len(self.models):
            raise ValueError("operator.models: each model once")
        if self.llm is not None and (self.kind != "hybrid" or self.llm.kind != "llm"):
            raise ValueError("operator.llm is a block of llm settings for operator.kind hybrid only")
        from metaexp.operators import BUILTINS

        if self.options and self.kind in BUILTINS:
            raise ValueError(
                f"operator.options is for plugin operators; operator.kind {self.kind} takes its "
                "settings as keys of operator"
            )
        if self.llm is not None and self.llm.api_key_env != self.api_key_env:
            raise ValueError("operator.api_key_env and operator.llm.api_key_env differ: set it once, in llm")
        weights = self.style.values() if isinstance(self.style, dict) else [1.0]
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError("a style mix needs non-negative weights that sum to more than 0")
        return self
