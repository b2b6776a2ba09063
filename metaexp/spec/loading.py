"""Reading a spec file: YAML, strategy presets, validation errors that name the key, the JSON schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from metaexp.errors import SpecError
from metaexp.resources import shorten
from metaexp.spec.run import Spec


def load_spec(path: str | Path) -> Spec:
    """Read, resolve presets, validate. Every error names the file and the key path."""
    from metaexp.resources import resolve_data_file

    path = Path(path)
    data = _read_yaml_mapping(path)
    strategy = data.get("strategy")
    if isinstance(strategy, str):
        strategy_path = resolve_data_file(strategy, path.parent, f"{path}: strategy")
        if strategy_path is None:
            raise SpecError(
                f"{path}: strategy: file {shorten(strategy)!r} not found (nor among metaexp's presets)"
            )
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
    """One line per problem (one problem: one line in all); `prefix` is the key path of the validated
    part inside the file, e.g. 'LEARNING_RATE'."""
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
                lines.append(f"  {where}: {msg} (got {shorten(repr(err.get('input')))})")
    if len(lines) == 2:  # one problem: one line
        return f"{path}: {lines[1].strip()}"
    return "\n".join(lines)


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    schema["properties"]["strategy"] = {
        "anyOf": [{"type": "string", "description": "a preset file"}, schema["properties"]["strategy"]]
    }
    schema["properties"].pop("root", None)
    return schema
