"""A lineage's population as the records define it: admission, parents, replay.

An island keeps a population selected with DEAP; a single lineage is a *ratchet*, a population
of one whose member is the last accepted candidate (the objective, not fitness, decides what it
accepts: metaexp/decide/decision.py). Everything here is a pure function of the records, so a
lineage rebuilt anywhere, or a ledger repairing refs after a kill, arrives at the same population
as the run that wrote them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from metaexp.decide.archives import MapElites
from metaexp.decide.selectors import Individual, admit, best, fitness, select_parents
from metaexp.record.records import ExperimentRecord, Status
from metaexp.spec import Spec

FORCED = (Status.EXPLORE, Status.ESCAPE, Status.MIGRATE)  # accepted regardless of fitness
RATCHET = "ratchet"  # the method of a single lineage's population of one


@dataclass
class Population:
    """The individuals a lineage keeps, and how long it has gone without improving."""

    size: int
    method: str
    signs: tuple[float, ...]
    members: list[Individual] = field(default_factory=list)
    archive: MapElites | None = None
    stagnation: int = 0  # experiments since the island's best last improved

    def seed(self, ind: Individual) -> None:
        self.members = [ind]
        if self.archive is not None:
            self.archive.add(ind, self.signs)

    @property
    def ratchet(self) -> bool:
        """A single lineage: one member, replaced by whatever is accepted."""
        return self.method == RATCHET

    def consider(self, child: Individual) -> bool:
        """Would the child be admitted on its merits (no state change)? Not asked of a ratchet."""
        if self.archive is not None:
            return _beats_cell(self.archive, child, self.signs)
        return admit(self.members, child, self.size, self.method, self.signs)[1]

    def observe(self, rec: ExperimentRecord, spec: Spec) -> None:
        """Update the population after one of this island's recorded experiments."""
        if rec.commit and rec.value is not None and not rec.status.failed:
            self.apply(individual(rec, spec), rec.status, restart=bool(rec.extra.get("restart")))
        elif rec.status.harness_ran:
            self.stagnation += 1

    def apply(self, child: Individual, status: Status, restart: bool = False) -> None:
        """Update the population after a recorded experiment of this island. A restart's child
        starts the population again on its own (the old optima stay in the hall of fame)."""
        before = self.best()
        if status is Status.ESCAPE and restart and self.archive is None:
            self.members = [child]
        elif status is Status.KEEP and self.archive is not None:
            self.archive.add(child, self.signs)
            self.members = list(self.archive.elites.values())
        elif status is Status.KEEP and not self.ratchet:
            self.members = admit(self.members, child, self.size, self.method, self.signs)[0] or self.members
        elif status in FORCED or status is Status.KEEP:
            self._force(child)
        if status.harness_ran or status is Status.MIGRATE:
            improved = before is None or fitness(self.best(), self.signs) > fitness(before, self.signs)
            self.stagnation = 0 if improved or status is Status.ESCAPE else self.stagnation + 1

    def _force(self, child: Individual) -> None:
        if self.archive is not None:
            self.archive.elites[self.archive.cell(child)] = child
            self.members = list(self.archive.elites.values())
            return
        others = [m for m in self.members if m.commit != child.commit]
        if len(others) >= self.size:  # make room: drop the worst, never the newcomer
            worst = min(others, key=lambda m: fitness(m, self.signs))
            others.remove(worst)
        self.members = [*others, child]

    def best(self) -> Individual | None:
        return best(self.members, self.signs) if self.members else None

    def parents(self, k: int, rng: random.Random, tournament_size: int) -> list[Individual]:
        if self.ratchet:
            return self.members[:1] * k  # no draw: the operator's draws follow as they always did
        if self.archive is not None:
            return self.archive.sample(k, rng)
        method = self.method if self.method != "map_elites" else "tournament"
        return select_parents(self.members, k, method, self.signs, rng, tournament_size=tournament_size)


def _beats_cell(archive: MapElites, child: Individual, signs: tuple[float, ...]) -> bool:
    elite = archive.elites.get(archive.cell(child))
    return elite is None or fitness(child, signs) > fitness(elite, signs)


def new_population(spec: Spec) -> Population:
    s = spec.strategy
    if not s.is_population:
        return Population(1, RATCHET, signs_of(spec))
    bins = [(f.low, f.high, f.bins) for f in s.features]
    archive = MapElites(bins) if s.selection == "map_elites" else None
    return Population(s.population, s.selection, signs_of(spec), archive=archive)


def sign_of(direction: str) -> float:
    return 1.0 if direction == "maximize" else -1.0


def signs_of(spec: Spec) -> tuple[float, ...]:
    """One sign per fitness value: every compared metric for pareto, else the decision value's."""
    if spec.objective.mode == "pareto":
        return tuple(sign_of(spec.metrics[m].direction) for m in pareto_metrics(spec))
    return (sign_of(spec.direction),)


def pareto_metrics(spec: Spec) -> list[str]:
    from metaexp.decide.objectives import Objective

    multi = Objective.of(spec).multi
    assert multi is not None
    return multi.metric_names()


def fitness_values(metrics: dict[str, float], value: float, spec: Spec) -> tuple[float, ...]:
    """What an individual is selected on: (value,), or each compared metric for pareto (NSGA-II)."""
    if spec.objective.mode == "pareto":
        return tuple(float(metrics[m]) for m in pareto_metrics(spec))
    return (value,)


def individual(rec: ExperimentRecord, spec: Spec, island: int | None = None) -> Individual:
    assert rec.commit is not None and rec.value is not None
    values = fitness_values(rec.metrics, rec.value, spec)
    return Individual(
        rec.commit, rec.n, values, features_of(rec, spec), rec.island if island is None else island
    )


def features_of(rec: ExperimentRecord, spec: Spec) -> tuple[float, ...]:
    values = []
    for feature in spec.strategy.features:
        if feature.lines:
            values.append(float(rec.extra.get("lines", 0)))
        else:
            values.append(float(rec.metrics.get(feature.metric or "", feature.low)))
    return tuple(values)


def replay(spec: Spec, records: Iterable[ExperimentRecord], islands: int) -> list[Population]:
    """Every island's population after `records` (the baseline seeds them all)."""
    records = list(records)
    pops = [new_population(spec) for _ in range(islands)]
    if not records or records[0].value is None:
        return pops
    base = records[0]
    for k, pop in enumerate(pops):
        pop.seed(individual(base, spec, island=k))
    for rec in records[1:]:
        if rec.island < islands:
            pops[rec.island].observe(rec, spec)
    return pops
