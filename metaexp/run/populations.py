"""The driver's copy of every lineage's population, replayed from the records as they are written.

It is what the one decision reads (metaexp/decide/decision.py) and what the branches are moved
by, so a scheduler never asks a lineage what its population is. For a population run it also keeps
the hall of fame (donors for restart escapes), picks migrants, and writes what `metaexp report`
shows of the islands (population.json and a line per island).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from metaexp.decide.archives import HallOfFame
from metaexp.decide.population import Population, individual, replay, signs_of
from metaexp.decide.selectors import Individual, fitness, island_stats
from metaexp.record import refs
from metaexp.record.records import ExperimentRecord, Status
from metaexp.run.recording import migrant_record
from metaexp.spec import Spec

HALL_OF_FAME = 10  # distinct commits kept across islands (one objective)
ISLAND_LINES_EVERY = 10  # evaluations per island between the per-island progress lines


class Populations:
    def __init__(self, spec: Spec, records: list[ExperimentRecord]) -> None:
        self.spec = spec
        self.k = spec.strategy.island_count
        self.pops: list[Population] = replay(spec, records, self.k)
        self.hof = HallOfFame(signs_of(spec), k=HALL_OF_FAME)
        self.island_best = {k: top.commit for k, pop in enumerate(self.pops) if (top := pop.best())}
        self.counts: dict[int, tuple[int, int]] = {}  # island -> (experiments, keeps)
        self.logbooks: dict[int, list[dict[str, float]]] = {}  # island -> statistics rows
        self.metrics: dict[str, dict[str, float]] = {}  # accepted commit -> metrics: a ratchet's yardstick
        self.restarted: dict[int, int] = {}  # island -> its experiment count when it last restarted
        self.crossovers: dict[str, int] = {}  # evaluated / invalid / rejected crossover children
        for rec in records:
            self._learn(rec)

    def observe(self, rec: ExperimentRecord) -> dict[str, str]:
        """Update after a record; the island branches it moves (population runs only)."""
        if rec.n == 1:
            self.pops = replay(self.spec, [rec], self.k)
        elif rec.island < self.k:
            self.pops[rec.island].observe(rec, self.spec)
        self._learn(rec)
        if not self.spec.strategy.is_population:
            return {}
        moves: dict[str, str] = {}
        for k in [rec.island] if rec.n > 1 else range(self.k):
            top = self.pops[k].best()
            if top is not None and self.island_best.get(k) != top.commit:
                moves[refs.island_branch(self.spec.tag, k)] = top.commit
                self.island_best[k] = top.commit
        return moves

    def _learn(self, rec: ExperimentRecord) -> None:
        if rec.commit and rec.value is not None and rec.status.accepted:
            self.metrics.setdefault(rec.commit, dict(rec.metrics))
            self.hof.update(individual(rec, self.spec))
        if rec.style == "crossover" or rec.description.startswith("crossover"):
            outcome = "evaluated" if rec.status.harness_ran else str(rec.status)
            self.crossovers[outcome] = self.crossovers.get(outcome, 0) + 1
        if rec.n > 1 and rec.status.harness_ran:
            ran, kept = self.counts.get(rec.island, (0, 0))
            self.counts[rec.island] = (ran + 1, kept + (rec.status is Status.KEEP))
            if rec.extra.get("restart"):
                self.restarted[rec.island] = ran + 1

    # --- escapes and migration

    def donor(self, k: int, distance: Callable[[Individual, Individual], float]) -> Individual | None:
        """For restart_from_hall_of_fame escapes: the hall-of-fame member farthest (`distance`) from
        island k's best, other than that best; None when there is none (a random restart then)."""
        escape = self.spec.strategy.escape
        if not escape or escape.action != "restart_from_hall_of_fame":
            return None
        mine = self.pops[k].best()
        others = [m for m in self.hof.members if mine is None or m.commit != mine.commit]
        if not others:
            return None
        return max(others, key=lambda m: distance(m, mine) if mine is not None else 0.0)

    def migrants(
        self, rec: ExperimentRecord, source: Callable[[int], ExperimentRecord]
    ) -> list[ExperimentRecord]:
        """The migrant rows island rec.island sends after `rec`, when its count says it is time
        (ring topology: to the next island); `source(n)` is record n."""
        migration, k = self.spec.strategy.migration, rec.island
        if not migration or self.k < 2 or not rec.status.harness_ran or rec.n == 1 or k >= self.k:
            return []
        done = self.counts.get(k, (0, 0))[0]
        if done == 0 or done % migration.every:
            return []
        target = (k + 1) % self.k
        if self._protected(target, migration.every):
            return []
        pop = self.pops[k]
        ranked = sorted(pop.members, key=lambda m: fitness(m, pop.signs), reverse=True)[: migration.count]
        return [migrant_record(source(m.n), k, target) for m in ranked]

    def _protected(self, k: int, experiments: int) -> bool:
        """A restarted island takes no migrants for a while: its fresh start would be overrun."""
        since = self.restarted.get(k)
        return since is not None and self.counts.get(k, (0, 0))[0] - since < experiments

    # --- what the report shows

    def island_lines(self) -> list[str]:
        """One line per island: its best, its experiments and keep rate, and its stagnation."""
        lines = []
        for k, pop in enumerate(self.pops):
            ran, kept = self.counts.get(k, (0, 0))
            top = pop.best()
            best = f"{top.values[0]:.6g} ({top.commit[:7]})" if top else "-"
            rate = f"{kept / ran:.0%}" if ran else "-"
            lines.append(
                f"  island {k}: best {best}, {ran} experiments, keep rate {rate}, "
                f"{pop.stagnation} since its last improvement"
            )
        return lines

    def lines_due(self, ran: int) -> bool:
        return self.spec.strategy.is_population and ran % (ISLAND_LINES_EVERY * self.k) == 0

    def save(self, out: Path) -> None:
        """population.json: the hall of fame and, per island, a DEAP Logbook-style row per update,
        its MAP-Elites archive and its members."""
        islands = []
        for k, pop in enumerate(self.pops):
            ran, _kept = self.counts.get(k, (0, 0))
            book = self.logbooks.setdefault(k, [])
            if not book or book[-1]["gen"] != ran:
                book.append(island_stats(pop.members, pop.signs, ran))
            archive = pop.archive.to_dict() if pop.archive is not None else None
            members = [m.to_dict() for m in pop.members]
            islands.append({"island": k, "logbook": book, "archive": archive, "members": members})
        data = {"hall_of_fame": self.hof.to_dict(), "islands": islands, "crossovers": self.crossovers}
        tmp = out / "population.json.tmp"
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(out / "population.json")
