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


def strategy_file(name: str, base: Path, key: str) -> Path | None:
    """A strategy by a preset's name (hill_climb) or a YAML's path: in the project first, then
    metaexp's presets; None if neither."""
    found = resolve_data_file(name, base, key)
    if found is None and not name.endswith((".yaml", ".yml")) and "/" not in name:
        found = resolve_data_file(f"strategies/{name}.yaml", base, key)
    return found


def preset_names(kind: str = "strategies") -> list[str]:
    """The names of metaexp's shipped presets of one kind (strategies: hill_climb, islands, ...)."""
    return sorted({p.stem for p in data_dir(kind).glob("*.yaml")})


def resolve_data_file(ref: str, base: Path, key: str) -> Path | None:
    """A path relative to `base` if it exists there, else the shipped file of that name; None if
    neither. `key` names the spec key in errors: a name no file can have, or a file outside the
    project (the git repository `base` lies in) and outside metaexp's shipped files."""
    from metaexp.errors import SpecError

    try:
        local = (base / ref).expanduser()
        if local.is_file():
            if not _inside(local.resolve(), [project_root(base), _PACKAGE.parent, _PACKAGE]):
                raise SpecError(
                    f"{key}: {ref!r} lies outside the project ({project_root(base)}): name a file in "
                    "the project or one of metaexp's presets"
                )
            return local
        parts = Path(ref).parts
        if parts and parts[0] in ("strategies", "search_spaces", "harnesses") and ".." not in parts:
            shipped = data_dir(parts[0]).joinpath(*parts[1:])
            if shipped.is_file():
                return shipped
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(f"{key}: {shorten(ref)!r} is not a usable file name ({why})") from None
    return None


def project_root(base: Path) -> Path:
    """The git repository `base` lies in (its top level), or `base` itself outside one."""
    base = base.resolve()
    for folder in (base, *base.parents):
        if (folder / ".git").exists():
            return folder
    return base


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def shorten(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters for an error message."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
