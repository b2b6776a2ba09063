"""The strategy space: Optuna distributions over dotted keys of the spec.

The file has the shape of an `operator.space` file (metaexp/space.py parses
both), with dotted spec keys for names:

    strategy.explore_rate: {type: float, low: 0.0, high: 0.3}
    operator.style: {type: categorical, choices: [conservative, bold]}

Every key is resolved against the spec's schema before the first trial, so a
misspelt key is an error that names it; a sampled combination the spec refuses
(say a style mix whose weights are all 0) is a FAILED outer trial instead.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from metaexp.errors import SpecError
from metaexp.spec import Spec, format_validation_error
from metaexp.spec.space import Param, Space, load_space

# Keys the outer study sets itself, or that would move the inner run elsewhere.
RESERVED = ("tag", "meta", "storage", "pipeline", "frozen", "root", "seed")


def load_strategy_space(ref: str, base: Path) -> tuple[Path, Space]:
    """Read and resolve a strategy space file (relative to `base`, or one metaexp ships)."""
    from metaexp.resources import resolve_data_file

    path = resolve_data_file(ref, base, "meta.space")
    if path is None:
        raise SpecError(f"meta space: file {ref!r} not found (relative to {base}, nor among metaexp's)")
    space = load_space(path, "meta.space")
    for key in space:
        resolve_key(path, key)
    for key in space:
        for other in space:
            if other.startswith(key + "."):
                raise SpecError(f"{path}: {key} and {other}: a key cannot also be a section of another")
    return path, space


def resolve_key(path: Path, key: str) -> None:
    """Refuse a dotted key that names nothing in the spec's schema."""
    parts = key.split(".")
    model: type[BaseModel] = Spec
    i = 0
    while True:
        part, here = parts[i], ".".join(parts[: i + 1])
        fields = {k: f for k, f in model.model_fields.items() if not (model is Spec and k in RESERVED)}
        if part not in fields:
            known = ", ".join(sorted(fields))
            raise SpecError(f"{path}: {key}: {here!r} is not a key of the spec (valid there: {known})")
        if i + 1 == len(parts):
            return
        annotation = fields[part].annotation
        sub = _submodel(annotation)
        step = 1
        if sub is None and (value_type := _dict_value_type(annotation)) is not None:
            if i + 2 == len(parts):  # a free key of a mapping: operator.style.<name>, harness.env.<VAR>
                return
            sub, step = _submodel(value_type), 2  # e.g. metrics.<name>.direction
        if sub is None:
            raise SpecError(f"{path}: {key}: {here} is a value, not a section")
        model, i = sub, i + step


def _alternatives(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _submodel(annotation: Any) -> type[BaseModel] | None:
    for alt in _alternatives(annotation):
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            return alt
    return None


def _dict_value_type(annotation: Any) -> Any:
    for alt in _alternatives(annotation):
        if typing.get_origin(alt) is dict:
            return typing.get_args(alt)[1]
    return None


def sampled_spec(base: Spec, params: dict[str, Any], tag: str, seed: int, source: Path) -> Spec:
    """The base spec with the sampled values set, the inner tag and seed, and no meta block.
    A combination the spec refuses raises SpecError naming the keys."""
    data = base.model_dump(mode="json", exclude={"root", "meta"})
    if "schedule" not in base.ray.model_fields_set:  # an outer trial's value does not depend on timing
        data["ray"]["schedule"] = "ordered"
    for key, value in params.items():
        node = data
        for part in key.split(".")[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}  # an absent section (migration: null) or a style name replaced by a mix
            node = node[part]
        node[key.rsplit(".", 1)[-1]] = value
    data.update(tag=tag, seed=seed, root=base.root)
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        sampled = ", ".join(f"{k}={v!r}" for k, v in params.items())
        raise SpecError(
            f"the sampled strategy ({sampled}) is not a valid spec:\n"
            + (format_validation_error(source, exc))
        ) from None


def distributions(space: Space) -> dict[str, Any]:
    return {name: param.distribution() for name, param in space.items()}


def space_as_data(space: Space) -> dict[str, dict[str, Any]]:
    return {name: param.model_dump(exclude_none=True) for name, param in space.items()}


__all__ = ["Param", "distributions", "load_strategy_space", "resolve_key", "sampled_spec", "space_as_data"]
