"""A meta study's plan: the spec's `meta:` block with command-line overrides, checked, and its space.

Its tag is `<spec tag>-meta` unless meta.tag says otherwise; outer trial n's inner runs are
tagged from it (inner_tag). outer.py runs the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from metaexp.errors import SpecError
from metaexp.meta.space import load_strategy_space
from metaexp.meta.spec import MetaSpec
from metaexp.spec import Spec, format_validation_error
from metaexp.spec.space import Space

MINIMIZED = ("experiments_to_target", "cost_usd", "wall_s")


def meta_tag(spec: Spec) -> str:
    return (spec.meta.tag if spec.meta else None) or f"{spec.tag}-meta"


@dataclass(frozen=True)
class MetaPlan:
    spec: Spec
    meta: MetaSpec
    tag: str
    space_path: Path
    space: Space
    budget: int  # inner experiments per inner run

    @property
    def directions(self) -> list[str]:
        return ["minimize" if o in MINIMIZED else self.spec.direction for o in self.meta.objectives]

    def inner_tag(self, number: int, repeat: int) -> str:
        return f"{self.tag}-t{number}" + (f"-r{repeat}" if self.meta.repeats > 1 else "")


def plan_meta(spec: Spec, source: Path, **overrides: Any) -> MetaPlan:
    """The spec's meta block with command-line overrides (None: not given), checked against the spec."""
    base = spec.meta.model_dump(exclude_unset=True) if spec.meta else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        meta = MetaSpec.model_validate({**base, **given})
    except ValidationError as exc:
        raise SpecError(format_validation_error(source, exc, prefix="meta")) from None
    if getattr(spec, "pipeline", None):
        raise SpecError(f"{source}: meta: a pipeline spec cannot be an inner run; run a stage's spec")
    budget = spec.budget.max_experiments
    if budget is None:
        raise SpecError(f"{source}: meta: the inner budget is budget.max_experiments; set it (e.g. 20)")
    if "experiments_to_target" in meta.objectives and meta.target is None and spec.budget.target is None:
        raise SpecError(f"{source}: meta.objectives experiments_to_target needs meta.target or budget.target")
    if not meta.space:
        raise SpecError(f"{source}: meta: no strategy space; pass --space FILE or set meta.space")
    path, space = load_strategy_space(meta.space, spec.root)
    return MetaPlan(spec, meta, meta_tag(spec), path, space, budget)
