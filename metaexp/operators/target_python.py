"""Python targets: a module-level `NAME = literal` found through the AST, by its byte span."""

from __future__ import annotations

import ast
import codecs
import json
import re
from functools import lru_cache

from metaexp.errors import TargetError
from metaexp.operators.target_span import Scalar, _decode, _listing, _Missing, _Span

_UPPER = re.compile(r"[A-Z][A-Z0-9_]*")


def locate(path: str, text: bytes, name: str) -> _Span:
    bindings = _py_bindings(_py_parse(path, text))
    if name not in bindings:
        raise _Missing(f"{path}: no module-level assignment to {name} (found: {_listing(bindings)})")
    stmt = bindings[name]
    if _chained(stmt):
        raise TargetError(f"{path}: {name} shares a chained assignment (line {stmt.lineno})")
    value = _py_literal(path, name, stmt.value)
    node, starts = stmt.value, _line_starts(text)
    assert node is not None and node.end_lineno is not None and node.end_col_offset is not None
    start = starts[node.lineno - 1] + node.col_offset
    return _Span(start, starts[node.end_lineno - 1] + node.end_col_offset, value)


def numeric_constants(path: str, text: bytes) -> dict[str, int | float]:
    """Top-level UPPER_CASE names bound to int/float literals (bools excluded)."""
    found: dict[str, int | float] = {}
    for name, stmt in _py_bindings(_py_parse(path, text)).items():
        if not _UPPER.fullmatch(name) or _chained(stmt):
            continue
        try:
            value = _py_literal(path, name, stmt.value)
        except TargetError:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            found[name] = value
    return found


def string_literal(value: str, like: str | None) -> str:
    # Keep the file's quote style: json.dumps output is also a valid double-quoted Python string.
    double = (like or "").lstrip("rRbBuU").startswith('"')
    return json.dumps(value, ensure_ascii=False) if double else repr(value)


@lru_cache(maxsize=64)  # operators read and write several names of one file in a row
def _py_parse(path: str, text: bytes) -> ast.Module:
    """The module's AST; shared between callers, who must not change it."""
    _decode(path, text)  # ast offsets are UTF-8 byte offsets, so other encodings would misplace
    try:
        return ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise TargetError(f"{path}: syntax error at line {exc.lineno}: {exc.msg}") from exc
    except ValueError as exc:  # e.g. a NUL byte
        raise TargetError(f"{path}: cannot parse: {exc}") from exc


def _py_bindings(module: ast.Module) -> dict[str, ast.Assign | ast.AnnAssign]:
    """Top-level `NAME = value` statements; the last one for a name wins, as it does at run time."""
    bindings: dict[str, ast.Assign | ast.AnnAssign] = {}
    for stmt in module.body:
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets = [stmt.target]
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                bindings[target.id] = stmt
    return bindings


def _chained(stmt: ast.Assign | ast.AnnAssign) -> bool:
    return isinstance(stmt, ast.Assign) and len(stmt.targets) > 1


def _py_literal(path: str, name: str, node: ast.expr | None) -> Scalar:
    assert node is not None  # _py_bindings keeps only statements with a value
    signed = isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd)
    inner = node.operand if isinstance(node, ast.UnaryOp) and signed else node
    if isinstance(inner, ast.Constant):
        try:
            value = ast.literal_eval(node)
        except ValueError:  # a sign on a non-number, such as -"a"
            value = ...
        if value is None or isinstance(value, int | float | str | bool):
            return value
    raise TargetError(
        f"{path}: {name} is not a number, string, bool or None literal "
        f"(line {node.lineno}: {ast.unparse(node)})"
    )


def _line_starts(text: bytes) -> list[int]:
    # Python ends lines at \n, \r\n and a lone \r; a BOM is not part of line 1's columns.
    first = len(codecs.BOM_UTF8) if text.startswith(codecs.BOM_UTF8) else 0
    return [first] + [m.end() for m in re.finditer(rb"\r\n|\r|\n", text)]
