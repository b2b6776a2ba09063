"""What a run prints while it works: one line per experiment, a live line on a terminal."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TextIO

from metaexp.record.records import ExperimentRecord

if TYPE_CHECKING:
    from metaexp.run.budget import Tally
    from metaexp.spec import Spec

BAR = 20  # characters in the progress bar


class Progress:
    def __init__(self, spec: Spec, out: TextIO, tally: Tally) -> None:
        self.spec, self.out, self.tally = spec, out, tally
        self.live = out.isatty()
        self.primary = spec.objective.primary
        self.t0 = time.monotonic()

    def start(self, resumed: int) -> None:
        what = f"resuming after {resumed} experiments" if resumed else "starting"
        where = f"autoexp/{self.spec.tag}"
        if self.spec.strategy.is_population:
            count = self.spec.strategy.island_count
            where = f"autoexp/{self.spec.tag}/island-<k> and /best ({count} islands)"
        self._line(f"metaexp run {self.spec.tag}: {what}; branch {where}, outputs .metaexp/{self.spec.tag}/")

    def running(self, n: int, commit: str, description: str) -> None:
        if self.live:
            self.out.write(f"\r\x1b[2K{self._bar()} #{n} {commit[:7]} running: {description[:60]}")
            self.out.flush()

    def recorded(self, rec: ExperimentRecord) -> None:
        value = f"{self.primary}={rec.value:.6g}" if rec.value is not None else (rec.reason or "")[:60]
        best = self.tally.best
        best_text = f"best {best.value:.6g} (#{best.n})" if best and best.value is not None else "no best yet"
        mark = "*" if rec.best else " "
        if self.spec.strategy.is_population:
            mark = f"{mark}i{rec.island} "
        cost = f" ${self.tally.cost_usd:.4f}" if self.tally.cost_usd else ""
        self._line(
            f"{self._bar()} #{rec.n:<4}{mark}{rec.status!s:<8} {value:<28} {best_text:<24} "
            f"{rec.wall_time_s:6.1f}s{cost}  {rec.description[:70]}"
        )

    def note(self, text: str) -> None:
        self._line(text)

    def finish(self, reason: str) -> None:
        t = self.tally
        counts = ", ".join(f"{k} {v}" for k, v in sorted(t.counts.items()))
        best = (
            f"best {self.primary} {t.best.value:.6g} at #{t.best.n} ({(t.best.commit or '')[:7]})"
            if t.best and t.best.value is not None
            else "no best"
        )
        where = f"; the best is {self._best_ref()}" if t.best is not None else ""
        self._line(
            f"stopped: {reason}\n{t.total} experiment{'' if t.total == 1 else 's'} ({counts}); {best}; "
            f"{time.monotonic() - self.t0:.1f}s this session\n"
            f"see: metaexp status / metaexp report{where}"
        )

    def _best_ref(self) -> str:
        if self.spec.strategy.is_population:
            return f"branch autoexp/{self.spec.tag}/best"
        return f"refs/metaexp/{self.spec.tag}/best"

    def _bar(self) -> str:
        limit, done = self.spec.budget.max_experiments, self.tally.ran
        if not limit and self.spec.budget.max_evaluations:  # harness runs: repeats, tuning and probes
            limit, done = self.spec.budget.max_evaluations, self.tally.evaluations
        if not limit:
            return f"[{self.tally.ran:>4}]"
        done = min(done, limit)
        filled = round(BAR * done / limit)
        return f"[{'#' * filled}{'.' * (BAR - filled)}] {done:>{len(str(limit))}}/{limit}"

    def _line(self, text: str) -> None:
        prefix = "\r\x1b[2K" if self.live else ""
        self.out.write(prefix + text + "\n")
        self.out.flush()
