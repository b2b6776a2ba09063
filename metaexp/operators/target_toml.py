"""TOML targets: a dotted key's value found by scanning `key = value` lines under their tables.

tomllib reads values and keys but gives no positions, so a line scanner finds the span and
tomllib checks what it holds.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator

from metaexp.errors import TargetError
from metaexp.operators.target_span import _listing, _Missing, _Span

_TOML_KEY = rb"(?:[A-Za-z0-9_-]+|\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*')"
_TOML_PATH = rb"%s(?:[ \t]*\.[ \t]*%s)*" % (_TOML_KEY, _TOML_KEY)
_TOML_HEADER = re.compile(rb"[ \t]*(\[\[?)[ \t]*(%s)[ \t]*\]\]?[ \t]*(?:#.*)?" % _TOML_PATH)
_TOML_ASSIGN = re.compile(rb"[ \t]*(%s)[ \t]*=[ \t]*" % _TOML_PATH)
_TOML_TOKEN = re.compile(rb"\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|[-+0-9A-Za-z_.:]+")
_TOML_TAIL = re.compile(rb"[ \t]*(?:#.*)?")
_TOML_STRINGS = re.compile(rb"\"(?:[^\"\\]|\\.)*\"|'[^']*'")


def locate(path: str, text: bytes, name: str) -> _Span:
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


def literal(path: str, value: str | bool | None, like: str | None) -> str:
    if value is None:
        raise TargetError(f"{path}: TOML has no null, so None cannot be written")
    if isinstance(value, bool):
        return "true" if value else "false"
    if (like or "").startswith("'") and value.isprintable() and "'" not in value:
        return f"'{value}'"  # keep a literal string literal
    # JSON escapes are TOML basic-string escapes, except that TOML also forbids a raw DEL.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
