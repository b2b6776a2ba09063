"""Package data: strategies/, search_spaces/ and harnesses/ from a wheel or a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """`name` is strategies, search_spaces or harnesses."""
    shipped = _PACKAGE / "_data" / name  # inside an installed wheel
    if shipped.is_dir():
        return shipped
    return _PACKAGE.parent / name  # an editable install or a checkout


def resolve_data_file(ref: str, base: Path) -> Path | None:
    """A path relative to `base` if it exists there, else the shipped file of that name."""
    local = (base / ref).expanduser()
    if local.is_file():
        return local
    parts = Path(ref).parts
    if parts and parts[0] in ("strategies", "search_spaces", "harnesses"):
        shipped = data_dir(parts[0]).joinpath(*parts[1:])
        if shipped.is_file():
            return shipped
    return None
