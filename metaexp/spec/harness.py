"""The `harness:` and `metrics:` blocks: the programs a candidate is run with and what they print."""

from __future__ import annotations

import shlex
from typing import Literal

from pydantic import Field, field_validator, model_validator

from metaexp.spec.base import _Strict


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


RESERVED_LOGS = ("probe", "precheck", "validation")  # logs/<n>.<name>.log beside a stage's


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
        if self.name in RESERVED_LOGS or self.name.isdigit() or self.name.startswith("incumbent-"):
            raise ValueError(
                f"cascade stage {self.name!r}: the name of other logs of an experiment (logs/<n>.<name>.log:"
                f" {', '.join(RESERVED_LOGS)}, a number, incumbent-<k>); name it otherwise"
            )
        if (self.min is not None or self.max is not None) and not self.metric:
            raise ValueError(f"cascade stage {self.name!r}: min/max need `metric`")
        if self.metric and self.min is None and self.max is None:
            raise ValueError(f"cascade stage {self.name!r}: a metric needs a threshold (min: or max:)")
        return self


class PrecheckSpec(_Command):
    """A cheap check of a candidate of the user's own (a linter, an import) before any harness run,
    in the same sandbox: a failure makes the candidate `invalid` (it never counts as an
    experiment), like a target file that does not parse."""

    timeout_s: float = Field(30.0, gt=0)


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
    memory_mb: float | None = Field(
        None,
        gt=0,
        description="limit on the harness's memory: its tmpfs files included, by a cgroup where the "
        "machine allows one (else its processes' total RSS, polled)",
    )
    cpus: float | None = Field(
        None, gt=0, description="CPU time the harness may use, in CPUs (a cgroup CPU quota; needs cgroups)"
    )
    pass_env: list[str] = Field(
        default_factory=list, description="variables passed although they look secret"
    )
    strip_env: list[str] = Field(default_factory=list, description="more variable names to remove")
    env: dict[str, str] = Field(default_factory=dict, description="extra variables for the harness")
    precheck: PrecheckSpec | None = Field(
        None,
        description="a command (or {command, timeout_s}) run on each candidate first; "
        "failing it is `invalid`, not an experiment",
    )
    cascade: list[CascadeStageSpec] = Field(
        default_factory=list, description="cheap stages run first; a candidate failing one skips the rest"
    )
    validation: ValidationSpec | None = Field(
        None, description="a held-out harness run on every new best (its metrics go into the row)"
    )
    sandbox: Literal["auto", "required", "off"] = Field(
        "auto",
        description="isolate the harness with bubblewrap: auto where it works (a line says which), "
        "required refuses to run without it, off runs it as you",
    )
    network: bool = Field(False, description="the sandboxed harness may use the network (loopback included)")
    preload: list[str] = Field(
        default_factory=list,
        description="modules a warm harness server imports once; each run of a `python SCRIPT.py` "
        "command is then a fork of it (numpy, cocoex, torch: what dominates a cheap evaluation)",
    )

    @field_validator("precheck", mode="before")
    @classmethod
    def _precheck_shorthand(cls, value: object) -> object:
        return {"command": value} if isinstance(value, str | list) else value


def argv_of(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)
