"""The knobs of a candidate: the numeric constants the hybrid operator's tuning may move.

The declared space's names, the module-level UPPER_CASE numeric constants of Python targets (as
`perturb` finds them), and any module-level `NAME = number` marked with a trailing
`# tune: LOW..HIGH [log]` comment. A declared name has its space's bounds, a marked one its
marker's; an unmarked constant gets bounds inferred from its value the first time the lineage saw
it (kept afterwards, so the lineage's trials share one search space).
"""

from __future__ import annotations

import io
import math
import re
import tokenize
from collections.abc import Mapping
from typing import Any

from metaexp.candidate import Knob
from metaexp.errors import TargetError
from metaexp.operators import InvalidProposal
from metaexp.operators.target import has_value, numeric_constants
from metaexp.spec.space import Param, Space

MARKER = re.compile(r"#\s*tune:(.*)$")


def find_knobs(
    files: Mapping[str, bytes], space: Space | None, seen: Mapping[str, Param] | None = None
) -> dict[str, Knob]:
    """The knobs of these files. A malformed `# tune:` marker is an InvalidProposal naming it;
    a file that does not parse has no knobs (its evaluation will say why)."""
    seen = seen or {}
    knobs: dict[str, Knob] = {}
    for path, text in sorted(files.items()):
        if not path.endswith(".py"):
            continue
        try:
            constants = numeric_constants(path, text)
            marked = markers(path, text)
        except TargetError:
            continue
        for name, value in constants.items():
            known = seen.get(name)
            param = known if known is not None and known.contains(value) else infer_param(value)
            knobs.setdefault(name, Knob(name, path, param, "constant"))
        for name, param in marked.items():
            if name not in knobs or knobs[name].path == path:
                knobs[name] = Knob(name, path, param, "marker")
    for name, param in (space or {}).items():
        holders = [p for p in sorted(files) if param.file in (None, p) and _has(p, files[p], name)]
        if len(holders) == 1:
            knobs[name] = Knob(name, holders[0], param, "space")
        elif name in knobs and knobs[name].source != "space":
            del knobs[name]  # found twice: ambiguous, as it is for `params`
    return knobs


def markers(path: str, text: bytes) -> dict[str, Param]:
    """`NAME = number  # tune: LOW..HIGH [log]` lines of a Python file, as parameters."""
    import ast

    found: dict[str, Param] = {}
    try:
        assigned = _module_numbers(ast.parse(text, filename=path))
    except (SyntaxError, ValueError) as exc:
        raise TargetError(f"{path}: cannot parse: {exc}") from exc
    for line, comment in _comments(path, text):
        match = MARKER.match(comment)
        if match is None:
            continue
        where = f"{path} line {line}"
        if line not in assigned:
            raise InvalidProposal(f"{where}: a `# tune:` marker must end a module-level `NAME = number` line")
        name, value = assigned[line]
        found[name] = _marker_param(where, name, value, match.group(1))
    return found


def infer_param(value: int | float) -> Param:
    """Bounds for an unmarked constant: a decade either side of a positive float (log), a factor
    of four for a positive int, symmetric around zero otherwise."""
    if isinstance(value, int):
        if value > 0:
            return Param(type="int", low=max(1, value // 4), high=max(4 * value, value + 4))
        return Param(type="int", low=5 * value - 4, high=-5 * value + 4)
    if value > 0:
        return Param(type="float", low=value / 10, high=value * 10, log=True)
    if value < 0:
        return Param(type="float", low=10 * value, high=-10 * value)
    return Param(type="float", low=-1.0, high=1.0)


def _has(path: str, text: bytes, name: str) -> bool:
    try:
        return has_value(path, text, name)
    except TargetError:
        return False


def _comments(path: str, text: bytes) -> list[tuple[int, str]]:
    try:
        tokens = list(tokenize.tokenize(io.BytesIO(text).readline))
    except (tokenize.TokenError, SyntaxError) as exc:
        raise TargetError(f"{path}: cannot tokenize: {exc}") from exc
    return [(tok.start[0], tok.string) for tok in tokens if tok.type == tokenize.COMMENT]


def _module_numbers(module: Any) -> dict[int, tuple[str, int | float]]:
    """{last line: (name, value)} of module-level `NAME = number` statements."""
    import ast

    found: dict[int, tuple[str, int | float]] = {}
    for stmt in module.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
            continue
        target = stmt.targets[0]
        try:
            value = ast.literal_eval(stmt.value)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            continue
        if isinstance(target, ast.Name) and isinstance(value, int | float) and not isinstance(value, bool):
            found[stmt.end_lineno or stmt.lineno] = (target.id, value)
    return found


def _marker_param(where: str, name: str, value: int | float, body: str) -> Param:
    words = body.split()
    usage = "expected `# tune: LOW..HIGH` or `# tune: LOW..HIGH log`, e.g. `# tune: 1e-4..1e-1 log`"
    if not words or ".." not in words[0] or words[1:] not in ([], ["log"]):
        raise InvalidProposal(f"{where}: malformed marker `# tune:{body}` ({usage})")
    low_text, high_text = words[0].split("..", 1)
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise InvalidProposal(f"{where}: malformed marker `# tune:{body}` ({usage})") from None
    log = words[1:] == ["log"]
    if not (math.isfinite(low) and math.isfinite(high) and low < high) or (log and low <= 0):
        why = "needs LOW < HIGH" + (" and LOW > 0 with log" if log else "")
        raise InvalidProposal(f"{where}: marker `# tune:{body}` {why}")
    if isinstance(value, int):
        low, high = math.ceil(low), math.floor(high)
        if low >= high:
            raise InvalidProposal(f"{where}: {name} is an int; `# tune:{body}` holds fewer than two ints")
    if not low <= value <= high:
        raise InvalidProposal(f"{where}: {name} = {value} lies outside its marker's range {low:g}..{high:g}")
    return Param(type="int" if isinstance(value, int) else "float", low=low, high=high, log=log)
