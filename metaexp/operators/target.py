"""Read and rewrite one named value inside a target file, leaving every other byte alone.

The optimiser edits targets (train.py, config.yaml, ...) by name. A locator per file kind finds
the byte span of the named literal; a write splices new literal text into that span and then
reads the value back, so a write either says exactly what was meant or raises. The locators live
in target_python, target_yaml (also JSON) and target_toml; what they share is in target_span.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from functools import lru_cache, partial
from pathlib import Path

from metaexp.errors import TargetError
from metaexp.operators import target_python, target_toml, target_yaml
from metaexp.operators.target_span import Scalar, _Missing, _Span

__all__ = [
    "format_number",
    "has_value",
    "literal_text",
    "numeric_constants",
    "read_value",
    "write_value",
    "write_values",
]

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


def write_value(path: str, text: bytes, name: str, value: Scalar, exact: bool = False) -> bytes:
    """`text` with `name` bound to `value`; floats to 4 significant digits, or (`exact`) as the
    shortest literal that reads back as the same float (a sampler's suggestion is then the point
    the harness evaluates)."""
    return write_values(path, text, {name: value}, exact)


def write_values(path: str, text: bytes, values: Mapping[str, Scalar], exact: bool = False) -> bytes:
    """`text` with every name of `values` bound to its value (as write_value writes one): the
    literals are spliced into their spans in one pass and the new text is parsed once to check
    that each reads back as written."""
    spans = sorted(((_locate(path, text, name), name) for name in values), key=lambda s: s[0].start)
    pieces, literals, at = [], {}, 0
    for span, name in spans:
        if span.block:
            raise TargetError(f"{path}: {name!r} is a YAML block scalar (| or >); edit it by hand")
        like = text[span.start : span.end].decode("utf-8")
        literal = literals[name] = literal_text(path, values[name], like=like, exact=exact)
        # An empty YAML value (`key:`) has its span right after the colon; `key:3` would be one string.
        if span.start == span.end and text[: span.start][-1:] not in (b"", b" ", b"\t", b"\n", b"\r"):
            literal = " " + literal
        try:
            pieces += [text[at : span.start], literal.encode("utf-8")]
        except UnicodeEncodeError as exc:  # a lone surrogate in a str value
            raise TargetError(f"{path}: cannot write {values[name]!r} to {name!r} as UTF-8") from exc
        at = span.end
    new = b"".join([*pieces, text[at:]])
    for name, literal in literals.items():
        _verify(path, new, name, values[name], literal)
    return new


def numeric_constants(path: str, text: bytes) -> dict[str, int | float]:
    """Top-level UPPER_CASE names bound to int/float literals (bools excluded); {} for non-.py."""
    if _kind(path) != ".py":
        return {}
    return target_python.numeric_constants(path, text)


def format_number(value: int | float, like: str | None = None, exact: bool = False) -> str:
    """Literal text with 4 significant digits (`exact`: the shortest that round-trips); scientific
    when the old literal `like` was."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TargetError(f"not a number: {value!r}")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise TargetError(f"cannot write {value!r} as a literal: it is not a finite number")
    if like is not None and _SCIENTIFIC.match(like.strip()):
        digits = next(d for d in range(17) if float(f"{value:.{d}e}") == value) if exact else 3
        mantissa, exponent = f"{value:.{digits}e}".split("e")
        text = f"{mantissa.rstrip('0').rstrip('.') if '.' in mantissa else mantissa}e{int(exponent)}"
        return text.upper() if "E" in like else text
    text = repr(value) if exact else f"{value:.4g}"  # repr: the shortest that reads back the same
    return text if "." in text or "e" in text else text + ".0"


def literal_text(path: str, value: Scalar, like: str | None = None, exact: bool = False) -> str:
    """The literal to write for `value` in this file kind; `like` is the literal it replaces;
    `exact`: floats in full (format_number)."""
    kind = _kind(path)
    if value is not None and not isinstance(value, int | float | str | bool):
        raise TargetError(f"{path}: cannot write {type(value).__name__} {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = format_number(value, like, exact)
        return target_yaml.number_literal(text) if kind == ".yaml" else text
    if kind == ".py":
        return target_python.string_literal(value, like) if isinstance(value, str) else repr(value)
    if kind == ".toml":
        return target_toml.literal(path, value, like)
    if kind == ".yaml" and isinstance(value, str):
        return target_yaml.string_literal(value, like)
    return json.dumps(value, ensure_ascii=False)  # JSON's true/false/null are YAML's too


# ---------------------------------------------------------------------------- shared helpers

_SCIENTIFIC = re.compile(r"[-+]?\s*(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)[eE]")  # not 0x1E


@lru_cache(maxsize=256)
def _kind(path: str) -> str:
    suffix = Path(path).suffix.lower()
    kind = ".yaml" if suffix == ".yml" else suffix
    if kind not in _LOCATORS:
        raise TargetError(f"{path}: unsupported target kind {suffix!r} (use .py, .yaml, .json, .toml)")
    return kind


@lru_cache(maxsize=256)  # an experiment reads and writes a file's names ~30 times; a _Span is frozen
def _locate(path: str, text: bytes, name: str) -> _Span:
    return _LOCATORS[_kind(path)](path, text, name)


def _verify(path: str, new: bytes, name: str, value: Scalar, literal: str) -> None:
    want = float(literal) if isinstance(value, float) else value
    got = read_value(path, new, name)
    if got != want or type(got) is not type(want):
        raise TargetError(f"{path}: wrote {literal} to {name!r} but it reads back as {got!r}")


_LOCATORS: dict[str, Callable[[str, bytes, str], _Span]] = {
    ".py": target_python.locate,
    ".yaml": target_yaml.locate,
    ".json": partial(target_yaml.locate, json_mode=True),
    ".toml": target_toml.locate,
}
