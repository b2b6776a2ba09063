"""Mutation operators: propose a candidate (new target-file contents) from the lineage's state."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from metaexp.candidate import Candidate
    from metaexp.operators.styles import StyleMix
    from metaexp.record.records import ExperimentRecord
    from metaexp.spec import Spec
    from metaexp.spec.space import Space


class InvalidProposal(Exception):
    """The operator could not produce an applicable change; recorded as `invalid`."""

    def __init__(
        self, reason: str, extra: dict[str, Any] | None = None, usage: dict[str, float] | None = None
    ) -> None:
        super().__init__(reason)
        self.extra = extra or {}  # operator state to keep in the record
        self.usage = usage or {}  # what asking for it cost (LLM calls, tokens, cost_usd)


class RejectedProposal(InvalidProposal):
    """The change applies but may not be made (a path outside the targets or the repository);
    recorded as `rejected`, never run."""


@dataclass(frozen=True)
class LineageState:
    commit: str
    files: Mapping[str, bytes]  # every target file of `commit`
    metrics: Mapping[str, float]
    value: float | None


@dataclass(frozen=True)
class Context:
    """What an operator is built from."""

    spec: Spec
    root: Path
    styles: StyleMix
    space: Space | None
    history: list[ExperimentRecord]
    files: Mapping[str, bytes]  # the current target files, to locate names
    out: Path | None = None  # the run's outputs (.metaexp/<tag>/); None while only validating
    lineage: int = 0  # the island it proposes for (islands start their searches apart)


class Operator(Protocol):
    name: str

    def propose(self, state: LineageState, n: int, rng: random.Random) -> Candidate: ...

    def observe(self, record: ExperimentRecord) -> None: ...

    def params_of(self, files: Mapping[str, bytes]) -> dict[str, Any]: ...


class Restarts(Protocol):
    """An operator that can restart its search from a fresh point (an escape of the lineage)."""

    def restart(self, state: LineageState, n: int, rng: random.Random) -> Candidate: ...


def _params(ctx: Context) -> Operator:
    from metaexp.operators.params import ParamsOperator

    return ParamsOperator(ctx)


def _perturb(ctx: Context) -> Operator:
    from metaexp.operators.perturb import PerturbOperator

    return PerturbOperator(ctx)


def _llm(ctx: Context) -> Operator:
    from metaexp.operators.llm import LLMOperator

    return LLMOperator(ctx)


def _hybrid(ctx: Context) -> Operator:
    from metaexp.operators.hybrid import HybridOperator

    return HybridOperator(ctx)


REGISTRY: dict[str, Callable[[Context], Operator]] = {
    "params": _params,
    "perturb": _perturb,
    "llm": _llm,
    "hybrid": _hybrid,
}


def make_operator(ctx: Context) -> Operator:
    return REGISTRY[ctx.spec.operator.kind](ctx)


def experiment_rng(seed: int, n: int) -> random.Random:
    """One RNG per experiment, so a resumed run replays the same proposals."""
    return random.Random(f"metaexp:{seed}:{n}")


__all__ = [
    "REGISTRY",
    "Context",
    "InvalidProposal",
    "LineageState",
    "Operator",
    "experiment_rng",
    "make_operator",
]
