"""Population mechanics as units, serial and without Ray: migration cadence, the migrant sent,
protection of a restarted island, the hall-of-fame donor of a restart, crossover pairs, escapes.

`Populations` (the driver's copy of the islands) and `Lineage` (ask/tell) are built directly from
hand-written records; a lineage's plan comes from the landscape project (tests/conftest.py)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from conftest import Project

from metaexp.candidate import Candidate
from metaexp.decide.selectors import Individual, fitness
from metaexp.operators import LineageState
from metaexp.record.records import ExperimentRecord, Status
from metaexp.run.lineage import Lineage
from metaexp.run.plan import Plan, make_plan
from metaexp.run.populations import Populations
from metaexp.spec import Spec, load_spec

BASE = "0" * 40  # the baseline's commit in the Populations tests (no git needed there)


def sha(tag: str) -> str:
    """A commit name for a hand-written record."""
    return (tag * 40)[:40]


def record(
    n: int,
    commit: str | None,
    value: float | None,
    status: Status = Status.KEEP,
    island: int = 0,
    generation: int = 0,
    extra: dict[str, Any] | None = None,
) -> ExperimentRecord:
    """A recorded experiment of `island`, its loss `value` (None: no metric)."""
    return ExperimentRecord(
        n=n,
        commit=commit,
        parent=BASE if n > 1 else None,
        timestamp="",
        status=status,
        description=f"experiment {n}",
        metrics={"loss": value} if value is not None else {},
        value=value,
        island=island,
        generation=generation,
        extra=extra or {},
    )


def population_spec(project: Project, **strategy: Any) -> Spec:
    """The landscape spec with a population strategy (two islands of three unless overridden)."""
    return load_spec(project.spec(strategy={"islands": 2, "population": 3, **strategy}))


class Ledger:
    """Records fed to a Populations one at a time, as the driver does, with the migrants each sends."""

    def __init__(self, spec: Spec, baseline: float = 10.0) -> None:
        self.records = [record(1, BASE, baseline)]
        self.pops = Populations(spec, self.records)
        self.generations: dict[int, int] = {}

    def add(
        self,
        island: int,
        value: float | None,
        status: Status = Status.DISCARD,
        commit: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> list[ExperimentRecord]:
        n = len(self.records) + 1
        g = self.generations.get(island, 0)
        self.generations[island] = g + 1
        if commit is None and status is not Status.INVALID:
            commit = sha(f"{n:x}")
        rec = record(n, commit, value, status, island, g, extra)
        self.records.append(rec)
        self.pops.observe(rec)
        return self.pops.migrants(rec, lambda m: self.records[m - 1])


# --- migration (metaexp/run/populations.py)


def test_migrants_are_sent_exactly_every_n_experiments_of_the_sending_island(project: Project) -> None:
    """Island 0 sends migrants after its 3rd and 6th experiments (migration.every: 3) and at no
    other time; a proposal that never ran (invalid) does not count toward the cadence."""
    ledger = Ledger(population_spec(project, migration={"every": 3, "count": 1}))
    sent_after: list[int] = []
    for i in range(7):
        if i == 4:
            assert ledger.add(0, None, Status.INVALID) == []  # not an experiment
        if ledger.add(0, 20.0 + i):
            sent_after.append(ledger.pops.counts[0][0])
    assert ledger.pops.counts[0][0] == 7
    assert sent_after == [3, 6]


def test_the_migrant_is_the_sending_islands_best_member(project: Project) -> None:
    """The migrant (count 1) is a copy of the sender's best member, sent along the ring to the next
    island, not its worst."""
    ledger = Ledger(population_spec(project, migration={"every": 3, "count": 1}))
    ledger.add(0, 5.0, Status.KEEP, commit=sha("5"))
    ledger.add(0, 1.0, Status.KEEP, commit=sha("1"))  # the best (loss is minimised)
    sent = ledger.add(0, 3.0, Status.KEEP, commit=sha("3"))
    pop = ledger.pops.pops[0]
    assert {m.commit for m in pop.members} == {sha("5"), sha("1"), sha("3")}
    assert min(pop.members, key=lambda m: fitness(m, pop.signs)).commit == sha("5")
    assert len(sent) == 1
    (migrant,) = sent
    assert migrant.commit == sha("1") and migrant.value == 1.0
    assert (migrant.status, migrant.island) == (Status.MIGRATE, 1)
    assert migrant.description == "migrant #3 from island 0"


def test_a_restarted_island_takes_no_migrants_for_its_protection_period(project: Project) -> None:
    """After island 1 restarts, island 0's migration falls due but sends nothing until island 1 has
    run `every` experiments since its restart; island 1's own migrants still go out."""
    ledger = Ledger(population_spec(project, migration={"every": 2, "count": 1}))
    assert ledger.add(1, 7.0, Status.ESCAPE, extra={"restart": True}) == []  # island 1: 1 experiment
    assert ledger.pops.restarted == {1: 1}
    assert ledger.add(0, 20.0) == []
    assert ledger.add(0, 21.0) == []  # island 0's 2nd experiment: due, but island 1 is protected
    sent_by_1 = ledger.add(1, 22.0)  # island 1's 2nd: one experiment since its restart
    assert [m.island for m in sent_by_1] == [0]  # island 0 did not restart: it takes migrants
    ledger.add(1, 23.0)  # island 1: two experiments since its restart, protection over
    ledger.add(0, 24.0)
    sent = ledger.add(0, 25.0)  # island 0's 4th experiment: due again
    assert [(m.island, m.status) for m in sent] == [(1, Status.MIGRATE)]


# --- restart escapes from the hall of fame


def test_a_restart_takes_the_hall_of_fame_member_farthest_from_the_islands_best(project: Project) -> None:
    """restart_from_hall_of_fame: the donor is the hall-of-fame member farthest (by the distance
    given) from the island's own best, never that best itself, nor the nearest member."""
    spec = population_spec(project, escape={"patience": 3, "action": "restart_from_hall_of_fame"})
    ledger = Ledger(spec, baseline=5.0)
    ledger.add(0, 1.0, Status.KEEP, commit=sha("a"))  # island 0's best
    ledger.add(1, 2.0, Status.KEEP, commit=sha("b"))  # nearest to it
    ledger.add(1, 9.0, Status.KEEP, commit=sha("c"))  # farthest from it
    assert {m.commit for m in ledger.pops.hof.members} == {BASE, sha("a"), sha("b"), sha("c")}

    def distance(x: Individual, y: Individual) -> float:
        return abs(x.values[0] - y.values[0])

    donor = ledger.pops.donor(0, distance)
    assert donor is not None and donor.commit == sha("c")
    other = ledger.pops.donor(1, distance)  # island 1's best is b (2.0): a is 1 away, c 7
    assert other is not None and other.commit == sha("c")


# --- a lineage: crossover pairs, escapes (metaexp/run/lineage.py)


def params(x: float, y: float, width: int) -> bytes:
    return f"X = {x}\nY = {y}\nWIDTH = {width}\n".encode()


def lineage(plan: Plan, records: list[ExperimentRecord], files: dict[str, dict[str, bytes]]) -> Lineage:
    """Island 0 of the plan's run after `records`; the baseline's files are the plan's."""
    return Lineage(0, plan, records, {plan.start: plan.target_files, **files}, None)


def test_a_crossover_tries_another_pair_when_the_first_yields_no_child(project: Project) -> None:
    """When the operator's crossover of the first pair drawn gives nothing (the parents differ in
    one value only, or the child would equal a parent), the lineage tries the next pair and asks
    for that pair's child, not a mutation."""
    plan = make_plan(load_spec(project.spec(strategy={"population": 3, "crossover_rate": 1.0})))
    records = [
        record(1, plan.start, 10.0),
        record(2, sha("b"), 5.0, generation=0),
        record(3, sha("c"), 3.0, generation=1),
    ]
    files = {sha("b"): {"params.py": params(1.0, -2.0, 7)}, sha("c"): {"params.py": params(1.0, 0.5, 12)}}
    lin = lineage(plan, records, files)
    assert len(lin.pop.members) == 3
    tried: list[tuple[str, str]] = []

    def crossover(a: LineageState, b: LineageState, rng: random.Random) -> Candidate | None:
        tried.append((a.commit, b.commit))
        if len(tried) == 1:
            return None  # the first pair cannot cross
        return Candidate(a.commit, {"params.py": params(2.0, 1.0, 9)}, "crossed second pair", "crossover")

    lin.operator.crossover = crossover  # type: ignore[attr-defined]
    cand = lin.ask()
    assert len(tried) == 2 and all(a != b for a, b in tried)
    assert (cand.description, cand.style) == ("crossed second pair", "crossover")
    assert cand.parent == tried[1][0] and cand.parent_files == lin.files[tried[1][0]]


def stagnated(project: Project, discards: int) -> Lineage:
    """A lineage (escape patience 3, bold mutation) after `discards` worse children of the baseline."""
    strategy = {"population": 2, "escape": {"patience": 3, "action": "bold_mutation"}}
    plan = make_plan(load_spec(project.spec(strategy=strategy)))
    records = [record(1, plan.start, 10.0)]
    records += [
        record(2 + i, sha(f"{i + 1}"), 20.0 + i, Status.DISCARD, generation=i) for i in range(discards)
    ]
    return lineage(plan, records, {})


def test_a_lineage_escapes_when_its_stagnation_reaches_patience(project: Project) -> None:
    """Escape patience 3: after two experiments without improvement the lineage proposes an
    ordinary child; after the third (stagnation == patience) its next proposal is an escape."""
    before = stagnated(project, 2)
    assert before.pop.stagnation == 2 and not before.ask().escape
    at = stagnated(project, 3)
    assert at.pop.stagnation == 3
    assert at.ask().escape


@pytest.mark.parametrize("outcome", [Status.CRASH, Status.DISCARD, Status.INVALID])
def test_an_escape_that_fails_does_not_block_later_escapes(project: Project, outcome: Status) -> None:
    """While an escape is in flight the lineage proposes no second one; once the escape's record
    comes back as a crash, a discard or an invalid proposal (not an accepted escape), the still
    stagnating lineage escapes again."""
    lin = stagnated(project, 3)
    first = lin.ask()
    assert first.escape
    assert not lin.ask().escape  # one escape at a time
    commit = None if outcome is Status.INVALID else sha("e")
    value = 30.0 if outcome is Status.DISCARD else None
    lin.tell(record(10, commit, value, outcome, generation=first.generation))
    assert lin.pop.stagnation >= 3
    assert lin.ask().escape
