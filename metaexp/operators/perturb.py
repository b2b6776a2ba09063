"""Perturb numeric UPPER_CASE constants of Python targets: log-normal for floats, steps for ints."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from metaexp.candidate import Candidate
from metaexp.errors import SpecError
from metaexp.operators import Context, InvalidProposal, LineageState
from metaexp.operators.target import numeric_constants
from metaexp.operators.values import apply_values, child_at, crossed, locate_names, random_point, read_values
from metaexp.record.records import ExperimentRecord
from metaexp.spec.space import Param

MAX_TRIES = 8  # draws before a proposal that changes nothing is called invalid


class PerturbOperator:
    name = "perturb"

    def __init__(self, ctx: Context) -> None:
        self.styles = ctx.styles
        if ctx.space:
            numeric = {k: p for k, p in ctx.space.items() if p.type != "categorical"}
            self.located = locate_names(numeric, ctx.files, "operator.space")
            self.space: dict[str, Param] = numeric
        else:
            self.located = {
                name: path
                for path, text in ctx.files.items()
                if path.endswith(".py")
                for name in numeric_constants(path, text)
            }
            self.space = {}
        if not self.located:
            raise SpecError(
                "operator.kind perturb: no numeric UPPER_CASE module-level constants in the Python "
                f"target files ({', '.join(ctx.files)}); add some or use operator.space"
            )

    def propose(self, state: LineageState, n: int, rng: random.Random) -> Candidate:
        style = self.styles.pick(rng)
        names = sorted(self.located)
        count = len(names) if style.count is None else min(style.count, len(names))
        for _ in range(MAX_TRIES):
            chosen = rng.sample(names, count)
            changes = {name: self._step(name, state, style.scale, rng) for name in chosen}
            files, params, description = apply_values(self.located, state.files, changes)
            if files:
                return Candidate(state.commit, files, description, style.name, params)
        raise InvalidProposal(f"no perturbation of {', '.join(names)} changed the target")

    def restart(self, state: LineageState, n: int, rng: random.Random) -> Candidate:
        """A fresh point: uniform over the declared space, or (no space) every constant moved by a
        log-normal factor of sigma 1, from wherever the lineage is (never back to one baseline)."""
        return self._fresh(state, rng, "restart")

    def initial(self, state: LineageState, n: int, rng: random.Random) -> Candidate:
        """A member of a population that starts diverse (strategy.initial: random): a fresh point."""
        return self._fresh(state, rng, "initial")

    def _fresh(self, state: LineageState, rng: random.Random, what: str) -> Candidate:
        if self.space:
            return child_at(self.located, random_point(self.space, rng), state, what)
        moved = {name: self._step(name, state, 1.0, rng) for name in sorted(self.located)}
        return child_at(self.located, moved, state, what, exact=False)  # written as a step is

    def crossover(self, a: LineageState, b: LineageState, rng: random.Random) -> Candidate | None:
        return crossed(self.located, a, b, rng)

    def observe(self, record: ExperimentRecord) -> None:
        """Perturbation has no memory."""

    def params_of(self, files: Mapping[str, bytes]) -> dict[str, Any]:
        """The values this operator tunes, as they are in `files` (for the baseline's record)."""
        return read_values(self.located, files)

    def _step(self, name: str, state: LineageState, scale: float, rng: random.Random) -> float | int:
        from metaexp.operators.target import read_value

        path = self.located[name]
        value = read_value(path, state.files[path], name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InvalidProposal(f"{name} in {path} is not a number ({value!r})")
        param = self.space.get(name)
        if param is not None:
            return self._bounded_step(param, value, scale, rng)
        if isinstance(value, int):
            step = round(rng.gauss(0.0, scale) * max(1, abs(value))) or rng.choice((-1, 1))
            moved = value + step
            return max(moved, 1) if value > 0 else moved  # a positive count stays positive
        if value == 0:
            return rng.gauss(0.0, scale)
        return value * math.exp(rng.gauss(0.0, scale))

    @staticmethod
    def _bounded_step(param: Param, value: float, scale: float, rng: random.Random) -> float | int:
        unit = param.to_unit(min(max(value, param.low), param.high))  # type: ignore[type-var]
        moved = param.from_unit(unit + rng.gauss(0.0, scale))
        if param.type == "int" and moved == value:
            nudge = int(param.step or 1) * rng.choice((-1, 1))
            moved = param.clip(value + nudge)
        return moved
