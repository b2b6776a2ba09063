"""Named values in target files: where each lives, rewriting several at once, a random point of a
space, and crossing two parents' values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metaexp.errors import SpecError
from metaexp.operators.target import has_value, literal_text, read_value, write_values
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
    located: Mapping[str, str],
    files: Mapping[str, bytes],
    changes: Mapping[str, Any],
    exact: bool = False,
) -> tuple[dict[str, bytes], dict[str, Any], str]:
    """Write `changes` into the files (floats to 4 significant digits, or `exact`ly: a sampler's
    point, or a parent's value). Returns the changed files, the values now in them (as written,
    after formatting) and a description like 'LR 3e-3 → 4.2e-3' (4 digits either way)."""
    by_path: dict[str, dict[str, Any]] = {}
    for name, value in changes.items():
        by_path.setdefault(located[name], {})[name] = value
    new_files: dict[str, bytes] = {}
    parts = []
    for path, values in by_path.items():  # each file written in one pass and parsed once more
        text = files[path]
        updated = write_values(path, text, values, exact)
        if updated == text:
            continue
        new_files[path] = updated
        for name in values:
            old, new = read_value(path, text, name), read_value(path, updated, name)
            if old != new or type(old) is not type(new):
                parts.append(f"{name} {literal_text(path, old)} → {literal_text(path, new)}")
    after = read_values(located, {**files, **new_files})
    return new_files, after, ", ".join(parts)


def random_point(space: Space, rng: Any) -> dict[str, Any]:
    """A point drawn uniformly from the space (in log space where a range is log)."""
    return {
        name: rng.choice(param.choices) if param.type == "categorical" else param.from_unit(rng.random())
        for name, param in sorted(space.items())
    }


def child_at(
    located: Mapping[str, str], point: Mapping[str, Any], state: Any, what: str, exact: bool = True
) -> Any:
    """A child of lineage state `state` at `point` (a fresh one: random_point), written exactly
    unless not `exact`; `what` (restart, initial) is its style and the start of its description."""
    from metaexp.candidate import Candidate
    from metaexp.operators import InvalidProposal

    files, params, description = apply_values(located, state.files, point, exact=exact)
    if not files:
        raise InvalidProposal(f"the {what} drew the current values")
    return Candidate(state.commit, files, f"{what}: {description}", what, params, {"x0": dict(point)})


def crossed(located: Mapping[str, str], a: Any, b: Any, rng: Any) -> Any:
    """A child of lineage state `a` that takes some of `b`'s values: a block (a run of names in
    order, which keeps neighbouring values together) or, as often, each differing name from either
    parent (uniform). None when the child would equal a parent."""
    from metaexp.candidate import Candidate

    names = sorted(located)
    va, vb = read_values(located, a.files), read_values(located, b.files)
    differ = [n for n in names if va[n] != vb[n]]
    if len(differ) < 2:
        return None  # every child would be one of the parents
    kind = "block" if rng.random() < 0.5 else "uniform"
    if kind == "block":
        i, j = sorted(rng.sample(range(len(names) + 1), 2))
        taken = [n for n in names[i:j] if n in differ]
    else:
        taken = [n for n in differ if rng.random() < 0.5]
    if not taken or len(taken) == len(differ):
        return None
    files, params, description = apply_values(located, a.files, {n: vb[n] for n in taken}, exact=True)
    extra = {"parents": [a.commit, b.commit], "crossover": kind}
    what = f"crossover ({kind}) with {b.commit[:7]}: {description}"
    return Candidate(a.commit, files, what, "crossover", params, extra)
