"""What every target-file locator returns and raises: the span of one named literal.

Shared by target.py and its per-kind locators (target_python, target_yaml, target_toml); the
underscored names are private to those modules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from metaexp.errors import TargetError

Scalar = int | float | str | bool | None


class _Missing(TargetError):
    """The name is absent (as opposed to present but unreadable): has_value answers False."""


@dataclass(frozen=True)
class _Span:
    start: int  # byte offset of the literal's first byte
    end: int  # byte offset just past the literal
    value: Scalar
    block: bool = False  # a YAML block scalar (| or >): its span swallows the following newlines


def _decode(path: str, text: bytes) -> str:
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TargetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _listing(names: Iterable[str]) -> str:
    unique = list(dict.fromkeys(names))
    shown = ", ".join(unique[:12]) + (", ..." if len(unique) > 12 else "")
    return shown or "nothing"
