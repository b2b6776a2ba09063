"""Memory and CPU limits for one harness run, by a cgroup of its own (v2, or v1's memory and cpu
hierarchies), where this machine lets metaexp make one; the supervisor's RSS polling otherwise.

A cgroup counts what RSS polling cannot see (files the harness writes into its private tmpfs /tmp,
shared memory, page cache it dirties) and the kernel enforces the limit at allocation time, so a
spike between two polls is caught too: the harness is OOM-killed inside its group and the run is a
crash "memory above memory_mb". `harness.cpus` caps CPU time (a CFS quota); without cgroups it is
not enforced, and the run's first lines say so.

The groups are children of the supervisor's own (`metaexp-<pid>-<n>`), made per run and removed
after it. METAEXP_CGROUPS=off hides them (tests simulate a machine without cgroups with it).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

VARIABLE = "METAEXP_CGROUPS"  # "off": do not use cgroups (RSS polling, no CPU limit)
PERIOD_US = 100_000  # CFS period for harness.cpus
_names = itertools.count()


@dataclass(frozen=True)
class Group:
    """One run's cgroup: its directory per controller (v2: one directory for both)."""

    version: int
    memory: Path | None
    cpu: Path | None

    @property
    def dirs(self) -> list[Path]:
        return list(dict.fromkeys(d for d in (self.memory, self.cpu) if d is not None))

    def join(self) -> None:
        """Move the calling process into the group (run in the harness's child before exec)."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def oom_killed(self) -> bool:
        """The kernel killed something in the group for memory."""
        if self.memory is None:
            return False
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        return _counter(self.memory / name, "oom_kill") > 0  # not failcnt: a reclaimed page cache counts

    def peak_mb(self) -> float:
        if self.memory is None:
            return 0.0
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        return _read_int(self.memory / name) / 2**20

    def remove(self) -> None:
        """rmdir each directory; its processes are gone by now (the kernel may take a moment)."""
        for d in self.dirs:
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY: a process still exiting
                    time.sleep(0.001)


def available() -> str:
    """What limits the machine lets this process set: "cgroup v2", "cgroup v1" or ""."""
    if os.environ.get(VARIABLE, "").lower() == "off":
        return ""
    return _probe()


def describe(memory_mb: float | None, cpus: float | None) -> str | None:
    """The line a run prints about its limits (None when it sets none)."""
    if memory_mb is None and cpus is None:
        return None
    how = available()
    parts = [f"memory {memory_mb:g} MB" if memory_mb else "", f"{cpus:g} CPUs" if cpus else ""]
    what = ", ".join(p for p in parts if p)
    if how:
        return f"limits: {what} by {how} (enforced by the kernel)"
    polled = "memory by RSS polling" if memory_mb else ""
    unenforced = "harness.cpus not enforced" if cpus else ""
    why = "; ".join(p for p in (polled, unenforced) if p)
    return f"limits: {what}: no cgroup can be made here, {why}"


def limited(memory_mb: float | None, cpus: float | None) -> Group | None:
    """A new group with these limits, or None where cgroups are not available."""
    if not available() or (memory_mb is None and cpus is None):
        return None
    group = _make()
    if group is None:
        return None
    try:
        if memory_mb is not None and group.memory is not None:
            limit = str(int(memory_mb * 2**20))
            if group.version == 2:
                (group.memory / "memory.max").write_text(limit)
                with contextlib.suppress(OSError):  # no swap accounting: nothing to close
                    (group.memory / "memory.swap.max").write_text("0")
            else:
                (group.memory / "memory.limit_in_bytes").write_text(limit)
                with contextlib.suppress(OSError):
                    (group.memory / "memory.memsw.limit_in_bytes").write_text(limit)
        if cpus is not None and group.cpu is not None:
            quota = str(max(1000, int(cpus * PERIOD_US)))
            if group.version == 2:
                (group.cpu / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            else:
                (group.cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (group.cpu / "cpu.cfs_quota_us").write_text(quota)
    except OSError:
        group.remove()
        return None
    return group


# --- finding this process's groups


@functools.cache
def _probe() -> str:
    group = _make()
    if group is None or group.memory is None:
        if group is not None:
            group.remove()
        return ""
    group.remove()
    return f"cgroup v{group.version}"


def _make() -> Group | None:
    name = f"metaexp-{os.getpid()}-{next(_names)}"
    v2 = _own_dirs(2)
    if "" in v2 and (v2[""] / "cgroup.subtree_control").exists():
        made = _mkdir(v2[""] / name)
        if made is not None:
            if (made / "memory.max").exists():
                return Group(2, made, made if (made / "cpu.max").exists() else None)
            made.rmdir()
    v1 = _own_dirs(1)
    memory = _mkdir(v1["memory"] / name) if "memory" in v1 else None
    if memory is None or not (memory / "memory.limit_in_bytes").exists():
        return None
    cpu = _mkdir(v1["cpu"] / name) if "cpu" in v1 else None
    return Group(1, memory, cpu if cpu is not None and (cpu / "cpu.cfs_quota_us").exists() else None)


def _own_dirs(version: int) -> dict[str, Path]:
    """controller ("" for v2) -> the directory of this process's own group in that hierarchy."""
    try:
        mine = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return {}
    where: dict[str, tuple[str, str]] = {}  # controller -> (mount root in the hierarchy, mount point)
    for line in mounts:
        fields = line.split()
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3].split(",") if len(fields) > sep + 3 else []
        if version == 2 and fstype == "cgroup2":
            where.setdefault("", (fields[3], fields[4]))
        elif version == 1 and fstype == "cgroup":
            for controller in ("memory", "cpu"):
                if controller in options:
                    where.setdefault(controller, (fields[3], fields[4]))
    found = {}
    for line in mine:
        _id, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            if controller in where:
                root, point = where[controller]
                rel = os.path.relpath(path, root) if path.startswith(root) else None
                if rel is not None and not rel.startswith(".."):
                    found[controller] = Path(point) / ("" if rel == "." else rel)
    return found


def _mkdir(path: Path) -> Path | None:
    try:
        path.mkdir()
    except FileExistsError:
        return path
    except OSError:
        return None
    return path


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _counter(path: Path, key: str) -> int:
    """`key N` from a flat-keyed cgroup file (memory.events, memory.oom_control)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0
