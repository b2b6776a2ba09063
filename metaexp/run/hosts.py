"""The processes the lineage actors live in: started early, and kept between the runs of a study.

Starting a Ray actor is starting a Python process (and its imports): seconds on a busy machine, for
each island of each population run. So a run books its hosts as soon as Ray is up (`reserve`): they
start while the evaluation workers warm up and the baseline is evaluated, and the lineage is built
in its host once the records it needs exist (`LineageHost.start`, its first call, so every ask comes
after it). A host is named `metaexp:<tag>:island-<k>` (`:<epoch>` once rebuilt), as tools that
kill an island by name expect, and is killed when its run ends.

Within `kept()` (a study's or a meta study's runs, one after another in one process) a run that ends
cleanly gives its hosts back instead, and the next population run builds its lineages in them: a
lineage holds all of its state and is rebuilt from the records whenever it starts, so a host carries
nothing from one run to the next but its imports. Such hosts have no name (a name would be stale in
the next run). Hosts of a run that stopped abnormally (Ctrl-C, a Ray error, a lineage that died) are
killed either way. Hosts belong to one Ray cluster and job and one fault-injection setting (tests:
METAEXP_CRASHPOINT reaches a host when it is created).
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from metaexp.crashpoints import VARIABLE

__all__ = ["LineageHost", "finish", "keep_between_runs", "kept", "reserve", "take"]

_KEEP = False  # whether a run that ends cleanly keeps its hosts for the next run of this process
_IDLE: dict[tuple[str, str, str | None], list[Any]] = {}  # kept hosts, by _key()
_BOOKED: dict[tuple[tuple[str, str, str | None], str, int], Any] = {}  # (key, tag, k) -> named host
_ACTOR: Any = None  # LineageHost as a Ray actor class, made once per process


class LineageHost:
    """A lineage actor: its process is up before its lineage exists (`start` builds it)."""

    def __init__(self) -> None:
        import metaexp.run.lineage  # noqa: F401  (the imports, while the driver does other things)

        self.lineage: Any = None

    def start(self, *args: Any) -> None:
        """Build the lineage (Lineage's arguments). One that cannot be built ends the actor, as an
        actor whose constructor fails does: its callers see it died."""
        import ray

        from metaexp.run.lineage import Lineage

        try:
            self.lineage = Lineage(*args)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            ray.actor.exit_actor()

    def ask(self, *args: Any) -> Any:
        return self.lineage.ask(*args)

    def tell(self, *args: Any) -> None:
        self.lineage.tell(*args)


@contextlib.contextmanager
def kept() -> Iterator[None]:
    """Runs inside keep their hosts for each other; on leaving, the hosts left over are killed."""
    global _KEEP
    before, _KEEP = _KEEP, True
    try:
        yield
    finally:
        _KEEP = before
        left = [host for hosts in _IDLE.values() for host in hosts] if not before else []
        if left:
            _kill(left)
            _IDLE.clear()


def keep_between_runs() -> None:
    """For the rest of this process (a worker that runs one study run after another)."""
    global _KEEP
    _KEEP = True


def reserve(tag: str, count: int) -> None:
    """Start the hosts of run `tag`'s `count` lineages now, without waiting for them."""
    key = _key()
    if _KEEP:
        idle = _IDLE.setdefault(key, [])
        idle.extend(_new(None) for _ in range(count - len(idle)))
        return
    for k in range(count):
        if (key, tag, k) not in _BOOKED:
            _BOOKED[(key, tag, k)] = _new(_name(tag, k, 0))


def take(tag: str, k: int, epoch: int) -> Any:
    """The host run `tag`'s lineage k is built in (its `epoch`-th rebuild): a kept or booked one, or
    one started now."""
    key = _key()
    if _KEEP and _IDLE.get(key):
        return _IDLE[key].pop(0)
    booked = _BOOKED.pop((key, tag, k), None) if epoch == 0 else None
    return booked if booked is not None else _new(None if _KEEP else _name(tag, k, epoch))


def finish(tag: str, hosts: Sequence[Any], clean: bool) -> None:
    """Run `tag` is over: its hosts are kept (within `kept()`, when it ended cleanly) or killed, and
    so are hosts booked for it that it never took."""
    key = _key()
    unused = [_BOOKED.pop(b) for b in [b for b in _BOOKED if b[0] == key and b[1] == tag]]
    if _KEEP and clean:
        _IDLE.setdefault(key, []).extend([*hosts, *unused])
    else:
        _kill([*hosts, *unused])


def _name(tag: str, k: int, epoch: int) -> str:
    return f"metaexp:{tag}:island-{k}" + (f":{epoch}" if epoch else "")


def _kill(hosts: Sequence[Any]) -> None:
    import ray

    for host in hosts:
        ray.kill(host)


def _key() -> tuple[str, str, str | None]:
    """Hosts belong to one cluster and job, and to one fault-injection setting."""
    import ray

    context = ray.get_runtime_context()
    return context.gcs_address, context.get_job_id(), os.environ.get(VARIABLE)


def _new(name: str | None) -> Any:
    """A host pinned to this (the driver's) node: every LLM call and API key stays here."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    global _ACTOR
    if _ACTOR is None:
        _ACTOR = ray.remote(num_cpus=0, max_restarts=0)(LineageHost)
    here = ray.get_runtime_context().get_node_id()
    crash = os.environ.get(VARIABLE)
    return _ACTOR.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
        name=name,
        get_if_exists=False,
        runtime_env={"env_vars": {VARIABLE: crash}} if crash else None,  # fault injection (tests)
    ).remote()
