"""Planning a study: one validated spec per (strategy, seed), before anything runs.

Each run gets its own tag `<tag>-<strategy>-s<seed>` in the spec's project and storage.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from metaexp.errors import SpecError
from metaexp.resources import preset_names, strategy_file
from metaexp.spec import Spec, format_validation_error, load_spec
from metaexp.spec.loading import STRATEGY_KEYS, SpecSource, read_source, read_yaml_mapping

__all__ = ["DEFAULT_STRATEGIES", "PlannedRun", "plan_runs", "resolve_strategy"]

DEFAULT_STRATEGIES = ("hill_climb", "explore_exploit", "islands", "pbt")


@dataclass(frozen=True)
class PlannedRun:
    strategy: str
    seed: int
    spec: Spec


def plan_runs(
    spec_path: SpecSource,
    strategies: Sequence[str],
    seeds: int,
    budget: int | None = None,
    root: str | os.PathLike[str] | None = None,
) -> tuple[Spec, list[PlannedRun]]:
    """The base spec and every run, validated before anything starts. `spec_path` is a spec file or
    a mapping of its keys whose project is `root` (as load_spec takes them)."""
    base = load_spec(spec_path, root=root)
    path, data, folder = read_source(spec_path, root)
    if base.budget.target is None:
        raise SpecError(
            f"{path}: budget.target: a study needs the known optimum as budget.target "
            "(the value that counts as reaching the global optimum)"
        )
    if base.objective.mode == "pareto":
        raise SpecError(f"{path}: objective.mode pareto has no single target to reach; a study needs one")
    if seeds < 1:
        raise SpecError(f"--seeds: at least 1 (got {seeds})")
    if not strategies:
        raise SpecError("--strategies: name at least one strategy, e.g. hill_climb islands")
    presets = {}
    for name in strategies:
        label, preset = resolve_strategy(name, folder)
        if label in presets:
            raise SpecError(f"--strategies: {name!r} is given twice")
        presets[label] = preset
    runs = []
    for label, preset in presets.items():
        for seed in range(base.seed, base.seed + seeds):
            run = {**data, "tag": f"{base.tag}-{label}-s{seed}", "seed": seed}
            run["strategy"] = {"name": label, **preset}
            run["budget"] = {**(data.get("budget") or {}), **({"max_experiments": budget} if budget else {})}
            evals = run["budget"].get("max_experiments") or base.budget.max_experiments
            if evals and "max_proposals" not in run["budget"]:  # free proposals cannot win a study
                run["budget"]["max_proposals"] = 3 * evals
            ray = data.get("ray") or {}
            run["ray"] = {"schedule": "ordered", **ray}  # a study's figures do not depend on timing
            run["root"] = folder
            try:
                runs.append(PlannedRun(label, seed, Spec.model_validate(run)))
            except ValidationError as exc:
                message = format_validation_error(path, exc)
                raise SpecError(f"strategy {label!r}, seed {seed}: {message}") from None
    return base, runs


def resolve_strategy(name: str, base: Path) -> tuple[str, dict[str, Any]]:
    """A preset name (hill_climb) or a strategy YAML, found in the project first, then shipped."""
    found = strategy_file(name, base, "--strategies")
    if found is None:
        raise SpecError(
            f"--strategies: unknown strategy {name!r}: neither a preset ({', '.join(preset_names())}) "
            f"nor a strategy YAML under {base}"
        )
    return found.stem, read_yaml_mapping(found, STRATEGY_KEYS)
