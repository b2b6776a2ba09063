"""Reading a spec (a YAML file, or a dict with its project directory): strategy presets, validation
errors that name the key, the JSON schema."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from metaexp.errors import SpecError
from metaexp.resources import shorten
from metaexp.spec.run import Spec

SpecSource = str | os.PathLike[str] | Mapping[str, Any]  # a spec file, or its keys as a mapping
DICT_LABEL = "spec"  # what error messages call a spec given as a mapping (a file's are its path)


def load_spec(source: SpecSource, *, root: str | os.PathLike[str] | None = None) -> Spec:
    """Read, resolve presets, validate. Every error is a SpecError that names the file and the key path.

    `source` is a spec YAML file (its project is the file's folder) or a mapping of the same keys;
    a mapping's project is `root` (default: the current directory), against which `strategy:`
    presets, `operator.space` and every other relative path resolve as they do beside a file.
    """
    from metaexp.resources import preset_names, strategy_file

    label, data, folder = read_source(source, root)
    strategy = data.get("strategy")
    if isinstance(strategy, str):
        strategy_path = strategy_file(strategy, folder, f"{label}: strategy")
        if strategy_path is None:
            raise SpecError(
                f"{label}: strategy: file {shorten(strategy)!r} not found, nor a preset "
                f"({', '.join(preset_names())})"
            )
        data["strategy"] = {"name": strategy_path.stem, **read_yaml_mapping(strategy_path, STRATEGY_KEYS)}
    data["root"] = folder
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(label, exc)) from None


def read_source(
    source: SpecSource, root: str | os.PathLike[str] | None = None
) -> tuple[str, dict[str, Any], Path]:
    """A spec's keys as given, unvalidated: (what errors call it, a fresh copy of its keys, the
    resolved project folder its relative paths start from)."""
    if isinstance(source, Mapping):
        if "root" in source:
            raise SpecError(
                f"{DICT_LABEL}: root: not a spec key; give the project as load_spec(..., root=DIR)"
            )
        folder = Path(root if root is not None else Path.cwd()).expanduser().resolve()
        if not folder.is_dir():
            raise SpecError(f"{DICT_LABEL}: root: {shorten(str(folder))!r} is not a directory")
        return DICT_LABEL, dict(source), folder
    if not isinstance(source, str | os.PathLike):
        raise SpecError(
            f"{DICT_LABEL}: must be a spec file's path or a mapping of its keys (got {type(source).__name__})"
        )
    if root is not None:
        raise SpecError(f"{source}: root: a spec file's project is its folder; root= is for a dict spec")
    path = Path(source)
    return str(path), read_yaml_mapping(path), path.parent.resolve()


class _NoDuplicateKeys(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error (PyYAML keeps the last
    one without a word: `tag: a` then `tag: b` ran as b)."""


def _mapping(loader: _NoDuplicateKeys, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}  # a scalar key -> its line (a list or mapping as a key is left alone)
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            continue
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice (lines {seen[key]} and {line})", key_node.start_mark
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_NoDuplicateKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def parse_yaml(text: str) -> Any:
    """A spec's (or a space's, a strategy's) YAML: safe, and no key given twice in one mapping."""
    return yaml.load(text, Loader=_NoDuplicateKeys)  # a SafeLoader's subclass


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: where, then what ("not valid YAML: line 3, column 1: key 'tag' is
    given twice (lines 1 and 3)")."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return f"not valid YAML: line {mark.line + 1}, column {mark.column + 1}: {what}"
    return "not valid YAML: " + " ".join(str(exc).split())


SPEC_KEYS = "tag:, target:, harness:, ..."
STRATEGY_KEYS = "islands:, population:, ..."


def read_yaml_mapping(path: Path, keys: str = SPEC_KEYS) -> dict[str, Any]:
    """A spec's (or a strategy's: `keys` says which) YAML file as a mapping, or one SpecError line."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: {yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: must be a YAML mapping of keys ({keys})")
    return data


def format_validation_error(path: str | Path, exc: ValidationError, prefix: str = "") -> str:
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
