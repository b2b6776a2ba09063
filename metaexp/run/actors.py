"""The lineages of a Ray run as actors on the driver's node: built from the records in hosts started
early (metaexp/run/hosts.py), told every record, and rebuilt when one dies (in a fresh host, named
for its epoch, with its candidates still in flight, so they are recorded once); one that keeps
dying stops the run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from metaexp.candidate import Candidate
from metaexp.run.core import Core

MAX_DEATHS = 3  # a lineage that dies this often without answering in between stops the run


class Actors:
    def __init__(self, core: Core, in_flight: Callable[[int], Sequence[Candidate]]) -> None:
        self.core, self.session, self.spec = core, core.session, core.spec
        self.k = self.spec.strategy.island_count
        self.in_flight = in_flight  # lineage k's candidates asked for and not yet recorded
        self.actors: list[Any] = []
        self.epochs = [0] * self.k
        self.deaths = [0] * self.k  # deaths of each lineage since it last answered
        core.tell = self.tell

    def __bool__(self) -> bool:
        return bool(self.actors)

    def spawn_all(self) -> None:
        self.actors = [self._spawn(k) for k in range(self.k)]

    def ask(self, k: int) -> Any:
        """The ObjectRef of lineage k's next candidate (a donor for its restarts comes along)."""
        return self.actors[k].ask.remote(self.core.donor(k))

    def answered(self, k: int) -> None:
        self.deaths[k] = 0

    def tell(self, k: int, rec: Any, tree: Any) -> None:
        if self.actors:
            self.actors[k].tell.remote(rec, tree)

    def finish(self, clean: bool) -> None:
        """The run is over: its hosts are killed, or kept for the next run of a study when it ended
        cleanly (nothing of theirs in flight; metaexp/run/hosts.py)."""
        from metaexp.run.hosts import finish

        finish(self.spec.tag, self.actors, clean)
        self.actors = []

    def _spawn(self, k: int) -> Any:
        """Lineage k, built from the records in a host of this process (booted early, or kept from
        an earlier run); its start comes before any ask, since an actor runs its calls in order."""
        from metaexp.run.hosts import take

        core = self.core
        plan, files, out = core.lineage_plan(k), core.lineage_files(k), core.lineage_out(k)
        pending = [c for c in self.in_flight(k) if c.kind != "baseline"]
        host = take(self.spec.tag, k, self.epochs[k])
        host.start.remote(k, plan, self.session.records, files, out, pending)
        return host

    def lost(self, k: int, exc: Exception) -> None:
        """Lineage k's actor died: rebuild it (its evaluations in flight go on), or stop the run
        when it keeps dying."""
        import ray

        self.deaths[k] += 1
        why = said(exc)
        if self.deaths[k] >= MAX_DEATHS:
            self.session.stopping.halt = (
                f"abort: island {k} died {self.deaths[k]} times in a row ({why}); run it again to resume"
            )
            return
        ray.kill(self.actors[k])  # if it is half alive: its name and resources go
        self.epochs[k] += 1
        self.actors[k] = self._spawn(k)
        mine = sum(1 for r in self.session.records if r.island == k)
        self.session.progress.note(f"island {k} died ({why}); rebuilt from {mine} records")


def evaluation_failed(exc: Exception) -> str:
    """Why an evaluation that Ray could not bring back is a crash."""
    import ray

    from metaexp.run.cluster import RETRIES

    if isinstance(exc, ray.exceptions.RayTaskError):
        return f"the evaluation failed: {said(exc.cause if exc.cause is not None else exc)}"
    return f"the evaluation's worker died on each of {RETRIES + 1} tries ({said(exc)})"


def said(exc: BaseException) -> str:
    """An exception in one line: its type and its message's last line (a Ray error's is the cause)."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1][:200]}" if lines else type(exc).__name__
