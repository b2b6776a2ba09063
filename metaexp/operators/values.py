"""Named values in target files: where each lives, and rewriting several at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metaexp.errors import SpecError
from metaexp.operators.target import has_value, literal_text, read_value, write_value
from metaexp.spec.space import Space


def locate_names(space: Space, files: Mapping[str, bytes], where: str) -> dict[str, str]:
    """{name: target path}; a name found nowhere, or in two files, is an error naming `where`."""
    located: dict[str, str] = {}
    for name, param in space.items():
        if param.file:
            if param.file not in files:
                raise SpecError(
                    f"{where}: {name}.file {param.file!r} is not a target file ({', '.join(files)})"
                )
            holders = [param.file] if has_value(param.file, files[param.file], name) else []
        else:
            holders = [path for path, text in files.items() if has_value(path, text, name)]
        if not holders:
            raise SpecError(f"{where}: {name!r} is not assigned in any target file ({', '.join(files)})")
        if len(holders) > 1:
            raise SpecError(
                f"{where}: {name!r} is found in {', '.join(holders)}; set {name}.file to pick one"
            )
        located[name] = holders[0]
    return located


def read_values(located: Mapping[str, str], files: Mapping[str, bytes]) -> dict[str, Any]:
    return {name: read_value(path, files[path], name) for name, path in located.items()}


def apply_values(
    located: Mapping[str, str], files: Mapping[str, bytes], changes: Mapping[str, Any]
) -> tuple[dict[str, bytes], dict[str, Any], str]:
    """Write `changes` into the files. Returns the changed files, the values now in them
    (as written, after formatting) and a description like 'LR 3e-3 → 4.2e-3'."""
    new_files: dict[str, bytes] = {}
    parts = []
    for name, value in changes.items():
        path = located[name]
        text = new_files.get(path, files[path])
        old = read_value(path, text, name)
        updated = write_value(path, text, name, value)
        if updated == text:
            continue
        new_files[path] = updated
        new = read_value(path, updated, name)
        parts.append(f"{name} {literal_text(path, old)} → {literal_text(path, new)}")
    after = read_values(located, {**files, **new_files})
    return new_files, after, ", ".join(parts)
