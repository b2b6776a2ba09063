"""Read and rewrite one named value inside a target file, leaving every other byte alone.

The optimiser edits targets (train.py, config.yaml, ...) by name. A locator per file kind finds
the byte span of the named literal; a write splices new literal text into that span and then
reads the value back, so a write either says exactly what was meant or raises.
"""

from __future__ import annotations

import ast
import codecs
import json
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import yaml

from metaexp.errors import TargetError

__all__ = [
    "format_number",
    "has_value",
    "literal_text",
    "numeric_constants",
    "read_value",
    "write_value",
]

Scalar = int | float | str | bool | None


class _Missing(TargetError):
    """The name is absent (as opposed to present but unreadable): has_value answers False."""


@dataclass(frozen=True)
class _Span:
    start: int  # byte offset of the literal's first byte
    end: int  # byte offset just past the literal
    value: Scalar
    block: bool = False  # a YAML block scalar (| or >): its span swallows the following newlines


# ---------------------------------------------------------------------------- public API


def read_value(path: str, text: bytes, name: str) -> Scalar:
    return _locate(path, text, name).value


def has_value(path: str, text: bytes, name: str) -> bool:
    """True when `name` is present. A file that cannot be parsed, or a name bound to something
    we cannot edit (an expression, an array), still raises: that is not absence."""
    try:
        _locate(path, text, name)
    except _Missing:
        return False
    return True


def write_value(path: str, text: bytes, name: str, value: Scalar) -> bytes:
    span = _locate(path, text, name)
    if span.block:
        raise TargetError(f"{path}: {name!r} is a YAML block scalar (| or >); edit it by hand")
    literal = literal_text(path, value, like=text[span.start : span.end].decode("utf-8"))
    before = text[: span.start]
    # An empty YAML value (`key:`) has its span right after the colon; `key:3` would be one string.
    if span.start == span.end and before[-1:] not in (b"", b" ", b"\t", b"\n", b"\r"):
        literal = " " + literal
    try:
        new = before + literal.encode("utf-8") + text[span.end :]
    except UnicodeEncodeError as exc:  # a lone surrogate in a str value
        raise TargetError(f"{path}: cannot write {value!r} to {name!r} as UTF-8") from exc
    _verify(path, new, name, value, literal)
    return new


def numeric_constants(path: str, text: bytes) -> dict[str, int | float]:
    """Top-level UPPER_CASE names bound to int/float literals (bools excluded); {} for non-.py."""
    if _kind(path) != ".py":
        return {}
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


def format_number(value: int | float, like: str | None = None) -> str:
    """Literal text with 4 significant digits; scientific when the old literal `like` was."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TargetError(f"not a number: {value!r}")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise TargetError(f"cannot write {value!r} as a literal: it is not a finite number")
    if like is not None and _SCIENTIFIC.match(like.strip()):
        mantissa, exponent = f"{value:.3e}".split("e")
        text = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return text.upper() if "E" in like else text
    text = f"{value:.4g}"
    return text if "." in text or "e" in text else text + ".0"


def literal_text(path: str, value: Scalar, like: str | None = None) -> str:
    """The literal to write for `value` in this file kind; `like` is the literal it replaces."""
    kind = _kind(path)
    if value is not None and not isinstance(value, int | float | str | bool):
        raise TargetError(f"{path}: cannot write {type(value).__name__} {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = format_number(value, like)
        return _yaml_number(text) if kind == ".yaml" else text
    if kind == ".py":
        return _py_string(value, like) if isinstance(value, str) else repr(value)
    if kind == ".toml":
        return _toml_literal(path, value, like)
    if kind == ".yaml" and isinstance(value, str):
        return _yaml_string(value, like)
    return json.dumps(value, ensure_ascii=False)  # JSON's true/false/null are YAML's too


# ---------------------------------------------------------------------------- shared helpers

_UPPER = re.compile(r"[A-Z][A-Z0-9_]*")
_SCIENTIFIC = re.compile(r"[-+]?\s*(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)[eE]")  # not 0x1E


def _kind(path: str) -> str:
    suffix = Path(path).suffix.lower()
    kind = ".yaml" if suffix == ".yml" else suffix
    if kind not in _LOCATORS:
        raise TargetError(f"{path}: unsupported target kind {suffix!r} (use .py, .yaml, .json, .toml)")
    return kind


def _locate(path: str, text: bytes, name: str) -> _Span:
    return _LOCATORS[_kind(path)](path, text, name)


def _decode(path: str, text: bytes) -> str:
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TargetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _listing(names: Iterable[str]) -> str:
    unique = list(dict.fromkeys(names))
    shown = ", ".join(unique[:12]) + (", ..." if len(unique) > 12 else "")
    return shown or "nothing"


def _verify(path: str, new: bytes, name: str, value: Scalar, literal: str) -> None:
    want = float(literal) if isinstance(value, float) else value
    got = read_value(path, new, name)
    if got != want or type(got) is not type(want):
        raise TargetError(f"{path}: wrote {literal} to {name!r} but it reads back as {got!r}")


# ---------------------------------------------------------------------------- .py


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


def _py_locate(path: str, text: bytes, name: str) -> _Span:
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


def _py_string(value: str, like: str | None) -> str:
    # Keep the file's quote style: json.dumps output is also a valid double-quoted Python string.
    double = (like or "").lstrip("rRbBuU").startswith('"')
    return json.dumps(value, ensure_ascii=False) if double else repr(value)


# ---------------------------------------------------------------------------- .yaml / .json

_YAML_PROPS = re.compile(r"(?:[&!]\S*\s+)*")  # an anchor or tag before the scalar itself
_YAML_PLAIN = re.compile(r"[A-Za-z_][\w./-]*")  # strings safe to write unquoted
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _yaml_locate(path: str, text: bytes, name: str, *, json_mode: bool = False) -> _Span:
    source = _decode(path, text)
    try:
        # PyYAML rejects tabs between JSON tokens; a tab is never raw inside a JSON string, and
        # swapping it for a space keeps every character index.
        root = yaml.compose(source.replace("\t", " ") if json_mode else source, yaml.SafeLoader)
    except yaml.YAMLError as exc:
        kind = "JSON" if json_mode else "YAML"
        raise TargetError(f"{path}: cannot parse as {kind}: {' '.join(str(exc).split())}") from exc
    node = _yaml_lookup(root, name) if root is not None else None
    if node is None:
        raise _Missing(f"{path}: key {name!r} not found (found: {_listing(_yaml_paths(root))})")
    if not isinstance(node, yaml.ScalarNode):
        shape = "mapping" if isinstance(node, yaml.MappingNode) else "list"
        raise TargetError(f"{path}: key {name!r} holds a {shape}, not a single value")
    if _yaml_occurrences(root, node) > 1:
        raise TargetError(f"{path}: key {name!r} is shared through a YAML anchor; edit it by hand")
    start, end = node.start_mark.index, node.end_mark.index
    props = _YAML_PROPS.match(source, start, end)
    assert props is not None  # the pattern matches the empty string
    value = _yaml_value(path, name, node, tagged="!" in props.group())
    byte_start = len(source[: props.end()].encode("utf-8"))
    byte_end = byte_start + len(source[props.end() : end].encode("utf-8"))
    return _Span(byte_start, byte_end, value, block=node.style in ("|", ">"))


def _yaml_lookup(node: yaml.Node, name: str) -> yaml.Node | None:
    """The node at dotted `name`: a literal key with dots wins, then each split; last key wins."""
    if isinstance(node, yaml.MappingNode):
        pairs = [(k.value, v) for k, v in reversed(node.value) if isinstance(k, yaml.ScalarNode)]
        for key, value in pairs:
            if key == name:
                return value
        for key, value in pairs:
            if name.startswith(key + "."):
                found = _yaml_lookup(value, name[len(key) + 1 :])
                if found is not None:
                    return found
    elif isinstance(node, yaml.SequenceNode):
        head, dot, rest = name.partition(".")
        if head.isdigit() and int(head) < len(node.value):
            item = node.value[int(head)]
            return _yaml_lookup(item, rest) if dot else item
    return None


def _yaml_paths(node: yaml.Node | None, prefix: str = "", depth: int = 0) -> Iterator[str]:
    """Dotted paths of the mapping leaves, for error messages (depth-capped: aliases may loop)."""
    if not isinstance(node, yaml.MappingNode) or depth > 20:
        return
    for key, value in node.value:
        path = f"{prefix}{key.value}"
        if isinstance(value, yaml.MappingNode):
            yield from _yaml_paths(value, path + ".", depth + 1)
        else:
            yield path


def _yaml_occurrences(root: yaml.Node, target: yaml.Node) -> int:
    """How many places in the tree `target` appears; more than one means an alias shares it."""
    count, stack, budget = 0, [root], 100_000  # the budget stops alias bombs and cycles
    while stack and budget:
        node, budget = stack.pop(), budget - 1
        count += node is target
        if isinstance(node, yaml.MappingNode):
            stack.extend(item for pair in node.value for item in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    if not budget:
        raise TargetError("YAML aliases expand past 100000 nodes; refusing to edit this file")
    return count


def _yaml_value(path: str, name: str, node: yaml.ScalarNode, *, tagged: bool) -> Scalar:
    value = yaml.SafeLoader("").construct_object(node)
    # PyYAML follows YAML 1.1, where 1e-3 (no dot) is a string; a config author means a number.
    if isinstance(value, str) and node.style is None and not tagged and _NUMBER.fullmatch(value):
        return float(value) if re.search(r"[.eE]", value) else int(value)
    if value is None or isinstance(value, int | float | str | bool):
        return value
    raise TargetError(f"{path}: key {name!r} holds a {type(value).__name__}, not a plain value")


def _yaml_number(text: str) -> str:
    """PyYAML reads 1e-3 as a string: give the mantissa a '.' and the exponent a sign."""
    m = re.fullmatch(r"([-+]?[\d.]+)([eE])([-+]?)(\d+)", text)
    if m is None:
        return text
    mantissa = m[1] if "." in m[1] else m[1] + ".0"
    return f"{mantissa}{m[2]}{m[3] or '+'}{m[4]}"


def _yaml_string(value: str, like: str | None) -> str:
    quote = (like or "")[:1]
    if quote == "'" and value.isprintable():
        return "'" + value.replace("'", "''") + "'"
    if quote != '"' and _YAML_PLAIN.fullmatch(value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


# ---------------------------------------------------------------------------- .toml

_TOML_KEY = rb"(?:[A-Za-z0-9_-]+|\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*')"
_TOML_PATH = rb"%s(?:[ \t]*\.[ \t]*%s)*" % (_TOML_KEY, _TOML_KEY)
_TOML_HEADER = re.compile(rb"[ \t]*(\[\[?)[ \t]*(%s)[ \t]*\]\]?[ \t]*(?:#.*)?" % _TOML_PATH)
_TOML_ASSIGN = re.compile(rb"[ \t]*(%s)[ \t]*=[ \t]*" % _TOML_PATH)
_TOML_TOKEN = re.compile(rb"\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|[-+0-9A-Za-z_.:]+")
_TOML_TAIL = re.compile(rb"[ \t]*(?:#.*)?")
_TOML_STRINGS = re.compile(rb"\"(?:[^\"\\]|\\.)*\"|'[^']*'")


def _toml_locate(path: str, text: bytes, name: str) -> _Span:
    entries = list(_toml_entries(path, text))
    for key, start, rest in entries:
        if key == name:
            return _toml_span(path, name, start, rest)
    found = _listing(key for key, _, _ in entries)
    raise _Missing(f"{path}: key {name!r} not found (found: {found})")


def _toml_entries(path: str, text: bytes) -> Iterator[tuple[str, int, bytes]]:
    """(dotted key, byte offset of its value, rest of the line) for each `key = value` line."""
    table: list[str] | None = []  # None under [[array.of.tables]]: its keys repeat
    offset, skip = 0, 0  # skip: nonzero while inside a multi-line array or string
    for raw in text.splitlines(keepends=True):
        line, here, offset = raw.rstrip(b"\r\n"), offset, offset + len(raw)
        if skip:
            skip = _toml_continues(line, skip)
        elif m := _TOML_HEADER.fullmatch(line):
            table = None if m[1] == b"[[" else _toml_parts(path, m[2])
        elif m := _TOML_ASSIGN.match(line):
            rest = line[m.end() :]
            if table is not None:
                yield ".".join([*table, *_toml_parts(path, m[1])]), here + m.end(), rest
            skip = _toml_opens(rest)


def _toml_opens(rest: bytes) -> int:
    """Nonzero when a value starts here and goes on past the end of its line."""
    for quotes in (b'"""', b"'''"):
        if rest.startswith(quotes):
            return 0 if quotes in rest[3:] else -1  # -1: until the closing quotes
    return _toml_depth(rest) if rest[:1] in (b"[", b"{") else 0


def _toml_continues(line: bytes, skip: int) -> int:
    if skip < 0:
        return 0 if b'"""' in line or b"'''" in line else skip
    return max(skip + _toml_depth(line), 0)


def _toml_depth(line: bytes) -> int:
    code = _TOML_STRINGS.sub(b"", line).split(b"#", 1)[0]
    return code.count(b"[") + code.count(b"{") - code.count(b"]") - code.count(b"}")


def _toml_parts(path: str, key: bytes) -> list[str]:
    # tomllib knows every quoting and escape rule; let it split the dotted key.
    try:
        node = tomllib.loads(key.decode("utf-8") + " = 0")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TargetError(f"{path}: cannot read TOML key {key!r}: {exc}") from exc
    parts = []
    while isinstance(node, dict):
        ((part, node),) = node.items()
        parts.append(part)
    return parts


def _toml_span(path: str, name: str, start: int, rest: bytes) -> _Span:
    if rest[:1] in (b"[", b"{"):
        raise TargetError(f"{path}: key {name!r} holds an array or inline table (not supported)")
    if rest[:3] in (b'"""', b"'''"):
        raise TargetError(f"{path}: key {name!r} holds a multi-line string (not supported)")
    m = _TOML_TOKEN.match(rest)
    if m is None or not _TOML_TAIL.fullmatch(rest, m.end()):
        raise TargetError(f"{path}: key {name!r}: cannot read value {rest.decode(errors='replace')}")
    try:
        value = tomllib.loads("v = " + m[0].decode("utf-8"))["v"]
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TargetError(f"{path}: key {name!r}: bad value {m[0]!r}: {exc}") from exc
    if not isinstance(value, int | float | str | bool):
        raise TargetError(f"{path}: key {name!r} holds a {type(value).__name__} (not supported)")
    return _Span(start, start + m.end(), value)


def _toml_literal(path: str, value: str | bool | None, like: str | None) -> str:
    if value is None:
        raise TargetError(f"{path}: TOML has no null, so None cannot be written")
    if isinstance(value, bool):
        return "true" if value else "false"
    if (like or "").startswith("'") and value.isprintable() and "'" not in value:
        return f"'{value}'"  # keep a literal string literal
    # JSON escapes are TOML basic-string escapes, except that TOML also forbids a raw DEL.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


_LOCATORS: dict[str, Callable[[str, bytes, str], _Span]] = {
    ".py": _py_locate,
    ".yaml": _yaml_locate,
    ".json": partial(_yaml_locate, json_mode=True),
    ".toml": _toml_locate,
}
