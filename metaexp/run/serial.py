"""The serial scheduler: one experiment at a time, in this process, lineage after lineage.

A single lineage runs here by default (no Ray). Each step is the core's: ask the lineage, prepare,
evaluate (metaexp/evaluate/runner.py, in this process), decide, validate a new best, record, tell.
"""

from __future__ import annotations

from metaexp.evaluate.harness import Interrupted
from metaexp.evaluate.runner import run_job, run_validation
from metaexp.run.budget import INTERRUPTED
from metaexp.run.core import Core
from metaexp.run.lineage import Lineage
from metaexp.run.recording import Flight


class Serial:
    def __init__(self, core: Core) -> None:
        self.core, self.session = core, core.session
        self.lineages: list[Lineage] = []
        core.tell = lambda k, rec, tree: self.lineages[k].tell(rec, tree) if self.lineages else None
        self._next = 0  # the lineage asked next (round robin)

    def drive(self) -> str:
        stopping = self.session.stopping
        with stopping.ctrl_c():
            try:
                while (reason := stopping.reason()) is None:
                    self._experiment()
            except KeyboardInterrupt:
                reason = INTERRUPTED
        return reason

    def _experiment(self) -> None:
        core = self.core
        if not self.session.records:
            flight = core.prepare(core.baseline())
        else:
            k = self._lineage()
            flight = core.prepare(self.lineages[k].ask(core.donor(k)))
        if flight is not None:
            self._evaluate(flight)
            core.record(flight)

    def _lineage(self) -> int:
        if not self.lineages:  # built once the baseline is recorded: lineages start from the records
            count = self.session.spec.strategy.island_count
            self.lineages = [self._build(k) for k in range(count)]
        k, self._next = self._next, (self._next + 1) % len(self.lineages)
        return k

    def _build(self, k: int) -> Lineage:
        core = self.core
        return Lineage(
            k, core.lineage_plan(k), self.session.records, core.lineage_files(k), core.lineage_out(k)
        )

    def _evaluate(self, flight: Flight) -> None:
        """Evaluate in this process, the logs where they are kept: this is the next record, n."""
        spec, base, session = self.session.spec, self.session.base, self.session
        job, n = self.core.job(flight), session.tally.total + 1
        logs = session.ws.out / "logs"
        doing = "tuning: " if flight.cand.tune is not None else ""
        session.progress.running(n, flight.commit or "", doing + flight.cand.description)
        try:
            if not self.core.evaluated(flight, run_job(spec, base, job, logs / f"{n}.log")):
                return
            session.progress.note(f"#{n}: a new best; running the held-out validation harness")
            held_out = run_validation(spec, base, flight.cand.tree, job.label, logs / f"{n}.validation.log")
            self.core.validated(flight, *held_out)
        except Interrupted:
            raise KeyboardInterrupt from None
