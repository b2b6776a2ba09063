"""Mutation operators: propose a candidate (new target-file contents) from the lineage's state."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from metaexp.candidate import Candidate
    from metaexp.operators.styles import StyleMix
    from metaexp.plugins import Registry
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
    """The member a proposal starts from: its commit, target files and measured metrics."""

    commit: str
    files: Mapping[str, bytes]  # every target file of `commit`
    metrics: Mapping[str, float]
    value: float | None


@dataclass(frozen=True)
class Context:
    """What an operator is built from (a plugin's factory gets the same)."""

    spec: Spec  # the whole validated spec; a plugin's own settings are spec.operator.options
    root: Path  # the repository's top level
    styles: StyleMix  # operator.style resolved: styles.pick(rng) draws one (its count and scale)
    space: Space | None  # operator.space loaded (name -> Param), or None
    history: list[ExperimentRecord]  # this lineage's records so far (a resumed run's, or none)
    files: Mapping[str, bytes]  # the current target files, to locate names
    out: Path | None = None  # the run's outputs (.metaexp/<tag>/); None while only validating
    lineage: int = 0  # the island it proposes for (islands start their searches apart)


@runtime_checkable
class Operator(Protocol):
    """What proposes the changes (operator.kind): built by a factory from a `Context`, one per lineage.

    Optional methods the lineage uses where an operator has them: `restart(state, n, rng)` (a fresh
    start when a population escapes: `Restarts`), `crossover(a, b, rng) -> Candidate | None` (its
    own crossover of two members' values; else git merges the two commits) and
    `observe_shared(record)` (another island's new best or a migrant it received).
    """

    name: str  # recorded as every record's `operator`

    def propose(self, state: LineageState, n: int, rng: random.Random) -> Candidate:
        """A change of `state`'s target files for experiment `n`. Draw only from `rng` (one per
        proposal, a function of the seed and `n`), so a resumed run proposes the same. Raise
        `InvalidProposal` (or `RejectedProposal`) when there is nothing applicable to propose."""
        ...

    def observe(self, record: ExperimentRecord) -> None:
        """One of this lineage's recorded experiments (the context's history was told already)."""
        ...

    def params_of(self, files: Mapping[str, bytes]) -> dict[str, Any]:
        """The values this operator moves, as they are in `files` (the baseline's record shows them)."""
        ...


OperatorFactory = Callable[[Context], Operator]  # a class taking the Context, or a function


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


BUILTINS: dict[str, OperatorFactory] = {
    "params": _params,
    "perturb": _perturb,
    "llm": _llm,
    "hybrid": _hybrid,
}


@functools.cache
def operators() -> Registry[OperatorFactory]:
    """Every operator a spec may name: the built-ins, then the entry points of the group
    `metaexp.operators` (each names an `OperatorFactory`). Cached: `operators.cache_clear()` reads
    the installed plugins again."""
    from metaexp.plugins import OPERATORS, Registry

    return Registry(OPERATORS, "operator", {name: lambda f=f: f for name, f in BUILTINS.items()}, _factory)


def _factory(obj: object) -> OperatorFactory:
    if not callable(obj):
        raise TypeError(f"names a {type(obj).__name__}, not an operator class or factory taking a Context")
    return obj  # type: ignore[return-value]


def make_operator(ctx: Context) -> Operator:
    """The spec's operator for this context; a plugin's must satisfy `Operator`."""
    from metaexp.plugins import PluginError

    kind = ctx.spec.operator.kind
    registry = operators()
    op = registry[kind](ctx)
    if kind not in BUILTINS and not isinstance(op, Operator):
        missing = [m for m in ("name", "propose", "observe", "params_of") if not hasattr(op, m)]
        raise PluginError(
            f"operator {kind!r} ({registry.origin(kind)}): built a {type(op).__name__} without "
            f"{', '.join(missing)} (see metaexp.operators.Operator)"
        )
    return op


def experiment_rng(seed: int, n: int) -> random.Random:
    """One RNG per experiment, so a resumed run replays the same proposals."""
    return random.Random(f"metaexp:{seed}:{n}")


__all__ = [
    "BUILTINS",
    "Context",
    "InvalidProposal",
    "LineageState",
    "Operator",
    "OperatorFactory",
    "RejectedProposal",
    "Restarts",
    "experiment_rng",
    "make_operator",
    "operators",
]
