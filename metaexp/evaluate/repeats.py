"""Repeated, paired evaluation of a noisy harness: SPRT or a fixed batch against the incumbent.

The candidate and the incumbent run on the same METAEXP_SEED values; the
incumbent's result per seed is cached (and rebuilt from the records on
resume), so each seed costs it one evaluation at most once. Every accepted
change starts a fresh block of seeds, so a lucky incumbent's own runs are
never the yardstick (the winner's curse bench/noise.py measures).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from metaexp.decide.objectives import Objective
from metaexp.evaluate.harness import Outcome
from metaexp.evaluate.noise import (
    CONFIRM_BLOCK,
    IncumbentCache,
    SeedSchedule,
    SPRTConfig,
    Verdict,
    batched,
    sprt,
)
from metaexp.record.records import ExperimentRecord
from metaexp.spec import Spec

if TYPE_CHECKING:
    from metaexp.candidate import Candidate

Run = Callable[[Mapping[str, bytes], int, str], Outcome]  # (files, seed, log label) -> outcome


@dataclass
class Measured:
    outcome: Outcome  # the candidate's mean metrics, or its first failing run
    better: bool
    reason: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    incumbent_runs: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    cascade: list[dict[str, object]] = field(default_factory=list)


class Repeater:
    def __init__(self, spec: Spec, objective: Objective) -> None:
        self.spec, self.objective = spec, objective
        self.method = spec.noise.method
        self.cfg = SPRTConfig(**spec.noise.sprt.model_dump())
        self.cache = IncumbentCache()

    def restore(self, records: Iterable[ExperimentRecord]) -> None:
        for rec in records:
            for run in rec.extra.get("incumbent_runs", []):
                self.cache.put(run["commit"], run["seed"], run["value"])

    def measure(
        self,
        run: Run,
        files: Mapping[str, bytes],
        incumbent: str,
        incumbent_files: Mapping[str, bytes],
        block: int,
        confirm_block: int | None = None,
    ) -> Measured:
        """Test the candidate against the incumbent on the seeds of `block`. With
        `noise.reevaluate_elites`, a winner is tested again on the fresh seeds of
        `confirm_block` and kept only if it wins there too (stats: `confirmed`)."""
        result = Measured(Outcome(None), False, "")
        verdict = self._test(
            run, files, incumbent, incumbent_files, SeedSchedule(self.spec.seed, block), result
        )
        if verdict is None:
            return result
        first = verdict
        if verdict.better and self.spec.noise.reevaluate_elites and confirm_block is not None:
            schedule = SeedSchedule(self.spec.seed, confirm_block)
            verdict = self._test(run, files, incumbent, incumbent_files, schedule, result, confirm=True)
            if verdict is None:
                result.stats["confirmed"] = False
                return result
            result.stats["confirmed"] = verdict.better
        result.outcome = _mean(result.runs, result.outcome)
        result.better = verdict.better
        result.reason = f"{verdict.reason} (n={verdict.n}, mean gain {verdict.mean:.4g} ± {verdict.std:.4g})"
        if verdict is not first:
            found = f"won on its first seeds (n={first.n}, mean gain {first.mean:.4g})"
            held = "and held up on fresh seeds" if verdict.better else "but not on fresh seeds"
            result.reason = f"{found} {held}: {result.reason}"
        result.stats.update({"n": first.n, "mean_gain": first.mean, "std_gain": first.std})
        if verdict is not first:
            result.stats.update({"confirm_n": verdict.n, "confirm_mean_gain": verdict.mean})
        return result

    def _test(
        self,
        run: Run,
        files: Mapping[str, bytes],
        incumbent: str,
        incumbent_files: Mapping[str, bytes],
        schedule: SeedSchedule,
        result: Measured,
        confirm: bool = False,
    ) -> Verdict | None:
        """One sequential (or fixed-K) paired test; None when a run failed (`result` says why)."""
        limit = self.cfg.max_runs if self.method == "sprt" else self.spec.noise.repeats
        gains: list[float] = []
        verdict: Verdict | None = None
        prefix = "confirm-" if confirm else ""
        for i in range(limit):
            seed = schedule.seed(i)
            out = self._candidate_run(
                run, files, seed, f"{prefix}{i}" if confirm else str(i), result, confirm
            )
            if out is None:
                return None
            base = self._incumbent(run, incumbent, incumbent_files, seed, f"{prefix}{i}", result)
            if base is None:
                result.outcome = _mean(result.runs, out)
                result.reason = f"the incumbent failed on seed {seed}"
                return None
            result.outcome = out
            gains.append(self.objective.gain(self.objective.value(out.metrics) or 0.0, base))
            verdict = sprt(gains, self.cfg) if self.method == "sprt" else None
            if self.method == "batched" and i + 1 == limit:
                verdict = batched(gains, limit)
            if verdict is not None and verdict.decided:
                break
        assert verdict is not None
        return verdict

    def _candidate_run(
        self, run: Run, files: Mapping[str, bytes], seed: int, name: str, result: Measured, confirm: bool
    ) -> Outcome | None:
        """One run of the candidate, kept in `result.runs`; None when it failed (result says why)."""
        first = not result.runs
        out = run(files, seed, name)
        entry: dict[str, Any] = {"seed": seed, "metrics": out.metrics, "harness_s": round(out.harness_s, 4)}
        if confirm:
            entry["confirm"] = True
        result.runs.append(entry)
        if first and out.cascade:
            result.cascade = out.cascade
        if out.status is not None:
            result.outcome = _total(out, result.runs)
            result.reason = out.reason
            return None
        return out

    def _incumbent(
        self, run: Run, commit: str, files: Mapping[str, bytes], seed: int, i: str, result: Measured
    ) -> float | None:
        cached = self.cache.get(commit, seed)
        if cached is not None:
            return cached
        out = run(files, seed, f"incumbent-{i}")
        value = self.objective.value(out.metrics) if out.status is None else None
        if value is None:
            return None
        self.cache.put(commit, seed, value)
        result.incumbent_runs.append(
            {"commit": commit, "seed": seed, "value": value, "harness_s": round(out.harness_s, 4)}
        )
        return value


class ParentTests:
    """The driver's side of noisy tests: each candidate is tested against its parent by the runner
    (wherever it runs). The driver keeps every parent's per-seed values (rebuilt from the records
    on resume) and hands them to the next child's job; each parent is compared on a seed block of
    its own (the experiment that first measured it), and each child's re-evaluation on a block no
    other child uses. A single lineage uses the same rule: its parent is its incumbent."""

    def __init__(self, islands: int) -> None:
        self.islands = islands
        self.cache = IncumbentCache()
        self.first_n: dict[str, int] = {}  # commit -> the experiment that first measured it

    def learn(self, rec: ExperimentRecord) -> None:
        if rec.commit and rec.status.harness_ran:
            self.first_n.setdefault(rec.commit, rec.n)
        self.absorb(rec.extra.get("incumbent_runs", []))

    def absorb(self, incumbent_runs: Iterable[Mapping[str, Any]]) -> None:
        for run in incumbent_runs:
            self.cache.put(run["commit"], run["seed"], run["value"])

    def payload(self, cand: Candidate) -> dict[str, Any]:
        """What the runner needs for the paired test of a candidate against its parent (the parent's
        files travel with the candidate)."""
        return {
            "parent": cand.parent,
            "cached": self.cache.values_for(cand.parent),
            "block": self.first_n.get(cand.parent, 1),
            "confirm_block": CONFIRM_BLOCK + 1_000 + cand.generation * self.islands + cand.lineage,
        }


def _mean(runs: list[dict[str, Any]], last: Outcome) -> Outcome:
    names = set().union(*(r["metrics"] for r in runs)) if runs else set()
    metrics = {m: statistics.fmean(r["metrics"][m] for r in runs if m in r["metrics"]) for m in names}
    return Outcome(None, metrics, sum(r["harness_s"] for r in runs), "", last.log_tail)


def _total(failed: Outcome, runs: list[dict[str, Any]]) -> Outcome:
    seconds = sum(r["harness_s"] for r in runs)
    return Outcome(failed.status, failed.metrics, seconds, failed.reason, failed.log_tail)
