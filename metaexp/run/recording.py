"""The one builder of an ExperimentRecord, for every experiment of every scheduler, the baseline too
(and the copy a migrant's row is).

A Flight is one experiment between its ask and its record: the candidate, its commit, what the
evaluation found and what the decision made of it. The record is built from it alone, so what a
row holds does not depend on where the experiment ran.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from metaexp.candidate import Candidate, diff_lines, fingerprint, line_count
from metaexp.evaluate.harness import Outcome
from metaexp.evaluate.runner import Evaluation
from metaexp.record.records import ExperimentRecord, Status, timestamp


@dataclass
class Flight:
    cand: Candidate
    asked: float  # time.monotonic() when the lineage was asked, for latency_s
    commit: str | None = None
    evaluation: Evaluation | None = None
    status: Status | None = None  # the decision, once made
    reason: str = ""
    validation: dict[str, object] | None = None  # the held-out harness on a new best
    validation_log: str = ""

    @property
    def outcome(self) -> Outcome:
        if self.evaluation is not None:
            return self.evaluation.outcome
        return Outcome(self.status, reason=self.reason)

    @property
    def logs(self) -> dict[str, str]:
        logs = dict(self.evaluation.logs) if self.evaluation is not None else {}
        if self.validation_log:
            logs["validation"] = self.validation_log
        return logs


def build_record(
    n: int, flight: Flight, value: float | None, best: bool, seed: int, operator: str, wall_s: float
) -> ExperimentRecord:
    """Experiment n as it is written; `value`: its decision value (None when it failed)."""
    cand, outcome = flight.cand, flight.outcome
    assert flight.status is not None
    baseline = cand.kind == "baseline"
    return ExperimentRecord(
        n=n,
        commit=flight.commit,
        parent=None if baseline else cand.parent,
        timestamp=timestamp(),
        status=flight.status,
        description=cand.description,
        metrics=outcome.metrics,
        value=value,
        diff_lines=diff_lines(cand.before, cand.files),
        wall_time_s=round(wall_s, 4),
        harness_s=round(outcome.harness_s, 4),
        operator="baseline" if baseline else operator,
        style=cand.style,
        params=cand.params,
        seed=seed,
        reason=flight.reason or outcome.reason,
        log_tail=outcome.log_tail if flight.status.failed else "",
        best=best,
        usage=cand.usage,
        island=cand.lineage,
        generation=cand.generation,
        extra=_extra(flight),
    )


def _extra(flight: Flight) -> dict[str, Any]:
    """The operator's state, then what the evaluation adds: size and identity of the tree, the node,
    the cascade, a noisy test's runs and statistics, the held-out validation, the latency."""
    cand, ev = flight.cand, flight.evaluation
    extra = dict(cand.extra)
    if cand.tree:
        extra["lines"] = line_count(cand.tree)
        extra["fingerprint"] = fingerprint(cand.tree)
    if ev is not None and ev.node:
        extra["node"] = ev.node
    test = ev.test if ev is not None else None
    cascade = test.cascade if test is not None else flight.outcome.cascade
    if cascade:
        extra["cascade"] = cascade
    if test is not None:
        extra.update(runs=test.runs, incumbent_runs=test.incumbent_runs, noise=test.stats)
        if "confirmed" in test.stats:
            extra["confirmed"] = test.stats["confirmed"]
    if ev is not None and ev.lost:
        extra["lost"] = True
    if ev is not None and ev.probe is not None:  # the parent run again after a crash streak
        status, probe = str(ev.probe.status or "ok"), ev.probe
        extra["probe"] = {"status": status, "metrics": probe.metrics, "reason": probe.reason}
    if flight.validation is not None:
        extra["validation"] = flight.validation
    extra["latency_s"] = round(time.monotonic() - flight.asked, 4)  # from the ask to the record
    return extra


def migrant_record(source: ExperimentRecord, k: int, target: int) -> ExperimentRecord:
    """Island k's member `source` as a row of the target island (numbered when it is written)."""
    return replace(
        source,
        parent=source.commit,
        timestamp=timestamp(),
        status=Status.MIGRATE,
        description=f"migrant #{source.n} from island {k}",
        wall_time_s=0.0,
        harness_s=0.0,
        best=False,
        usage={},
        island=target,
        generation=0,
        reason="",
        log_tail="",
    )
