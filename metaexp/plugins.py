"""Plugins: operators and selection schemes that other packages register by entry points.

A package registers an operator under the entry-point group `metaexp.operators` and a selection
scheme under `metaexp.selections` (README, "Plugins"). A `Registry` merges a group's installed entry
points with the built-ins: the names come from the installed distributions' metadata, read once per
process and without importing anything, so they can validate a spec and fill the JSON Schema's enum
cheaply. A plugin's module is imported the first time its name is used, so a plugin that fails to
import breaks only a spec that names it, with one line that names the plugin and its entry point.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, TypeVar

from metaexp.errors import SpecError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

T = TypeVar("T")

OPERATORS = "metaexp.operators"
SELECTIONS = "metaexp.selections"

__all__ = ["OPERATORS", "SELECTIONS", "PluginError", "Registry"]


class PluginError(SpecError):
    """A plugin that cannot be loaded, or that loads as something other than what its group holds."""


class Registry(Mapping[str, T]):
    """name -> implementation: the built-ins, then the installed entry points of `group`.

    `builtins` maps each built-in name to a loader (called on first use). `adapt` turns what a
    plugin's entry point loads into the implementation, or raises TypeError saying what is missing.
    A plugin cannot replace a built-in, and of two plugins with one name the first on the path wins;
    either is one warning line on stderr, once.
    """

    def __init__(
        self,
        group: str,
        what: str,
        builtins: Mapping[str, Callable[[], T]],
        adapt: Callable[[object], T],
    ) -> None:
        self.group, self.what, self.adapt = group, what, adapt
        self._builtins = dict(builtins)
        self._plugins: dict[str, EntryPoint] | None = None
        self._loaded: dict[str, T] = {}
        self._lock = threading.Lock()  # Ray actors may ask from several threads

    # --- names (no imports)

    @property
    def plugins(self) -> dict[str, EntryPoint]:
        """The installed entry points of the group, by name (built-in names left out)."""
        if self._plugins is None:
            self._plugins = self._scan()
        return self._plugins

    def names(self) -> list[str]:
        """The built-ins in their order, then the plugins alphabetically."""
        return [*self._builtins, *sorted(self.plugins)]

    def __contains__(self, name: object) -> bool:
        return name in self._builtins or name in self.plugins

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._builtins) + len(self.plugins)

    def origin(self, name: str) -> str:
        """Where a name comes from, as error messages say it."""
        if name in self._builtins:
            return "built-in"
        ep = self.plugins[name]
        dist = f", from {ep.dist.name} {ep.dist.version}" if ep.dist is not None else ""
        return f"entry point '{ep.name} = {ep.value}' in group {self.group}{dist}"

    def unknown(self, also: tuple[str, ...] = ()) -> str:
        """The message for a name nothing registered: the valid names (and `also`, valid besides)
        and where more come from."""
        return (
            f"not a registered {self.what} (valid: {', '.join([*self.names(), *also])}; "
            f"plugins add more under the entry-point group {self.group})"
        )

    # --- implementations (imported on first use)

    def __getitem__(self, name: str) -> T:
        if name not in self:
            raise KeyError(name)
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = self._builtins[name]() if name in self._builtins else self._load(name)
            return self._loaded[name]

    def _load(self, name: str) -> T:
        where = f"{self.what} {name!r} ({self.origin(name)})"
        try:
            obj = self.plugins[name].load()
        except Exception as exc:  # anything its import raises: one line, never a traceback
            raise PluginError(f"{where}: the plugin failed to load: {_one_line(exc)}") from None
        try:
            return self.adapt(obj)
        except TypeError as exc:
            raise PluginError(f"{where}: {exc}") from None

    def _scan(self) -> dict[str, EntryPoint]:
        from importlib.metadata import entry_points

        found: dict[str, EntryPoint] = {}
        for ep in entry_points(group=self.group):
            if ep.name in self._builtins:
                _warn(f"{self.group}: {ep.value!r} may not replace the built-in {ep.name!r}; ignored")
            elif ep.name in found:
                kept = found[ep.name].value
                _warn(f"{self.group}: {ep.name!r} is registered twice ({kept!r} kept, {ep.value!r} ignored)")
            else:
                found[ep.name] = ep
        return found


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _warn(message: str) -> None:
    print(f"metaexp: warning: {message}", file=sys.stderr)
