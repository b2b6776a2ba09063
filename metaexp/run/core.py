"""The one core both schedulers drive: every candidate a lineage asks for goes through
prepare → evaluate → decide → record, and the lineage is told the record.

* prepare: a crossover is composed, the candidate is committed (objects only), checked against the
  target and the immutable harness, and against every tree already tried or in flight;
* evaluate: the job for metaexp/evaluate/runner.py (the scheduler runs it here or on a worker);
* decide: metaexp/decide/decision.py on the driver's copy of the populations;
* record: one row (metaexp/run/recording.py) written by the session, the branches moved, the
  lineage told, then a population's migrants.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from metaexp.candidate import Candidate, compose, fingerprint, malformed
from metaexp.decide.decision import decide
from metaexp.decide.selectors import Individual
from metaexp.evaluate.repeats import ParentTests
from metaexp.evaluate.runner import Evaluation, Job
from metaexp.record import refs
from metaexp.record.records import ExperimentRecord, Status
from metaexp.run.budget import OnRecord
from metaexp.run.lineage import Donor
from metaexp.run.novelty import Novelty
from metaexp.run.plan import Plan, make_plan
from metaexp.run.populations import Populations
from metaexp.run.recording import Flight, build_record
from metaexp.run.session import Session

Tell = Callable[[int, ExperimentRecord, Mapping[str, bytes] | None], None]  # lineage k hears a record


class Core:
    def __init__(self, session: Session, on_record: OnRecord | None = None) -> None:
        self.session, self.spec, self.plan = session, session.spec, session.plan
        self.objective = session.objective
        self.on_record = on_record
        self.tell: Tell = lambda k, rec, tree: None  # the scheduler's way to reach lineage k
        self.population = self.spec.strategy.is_population
        self.populations = Populations(self.spec, session.records)
        self.parent_tests = (
            ParentTests(self.spec.strategy.island_count) if self.spec.noise.method != "none" else None
        )
        novelty, primary = self.spec.strategy.novelty, self.spec.objective.primary
        self.novelty = Novelty(self.plan.space, novelty, session.records, primary)
        for rec in session.records:
            self._remember(rec)
        self._mark = time.monotonic()  # when the previous row was written: rows add up to the clock

    # --- what lineages are built from

    def baseline(self) -> Candidate:
        """Experiment 1: the start commit, unchanged."""
        files = dict(self.plan.target_files)
        params = self.plan.operator([], files).params_of(files)
        return Candidate(self.plan.start, {}, "baseline", params=params, kind="baseline", parent_files=files)

    def lineage_plan(self, k: int) -> Plan:
        """The plan of lineage k: the spec's, with its island's overrides (target, style, ...)."""
        islands = self.spec.strategy.islands
        if isinstance(islands, int):
            return self.plan
        override = islands[k]
        settings = {"style": override.style, "program": override.program, "schedule": override.schedule}
        op = self.spec.operator.model_copy(update={k: v for k, v in settings.items() if v is not None})
        if override.model is not None:  # this island's own model, whichever block asks it
            one = {"model": override.model, "models": []}
            op = op.model_copy(update={"llm": op.llm.model_copy(update=one)} if op.llm else one)
        update: dict[str, Any] = {"operator": op}
        if override.target:
            update["target"] = override.target
        return make_plan(self.spec.model_copy(update=update), start=self.plan.start)

    def lineage_files(self, k: int) -> dict[str, dict[str, bytes]]:
        """The target files of lineage k's members and of the baseline, by commit."""
        wanted = {m.commit for m in self.populations.pops[k].members} | {self.session.records[0].commit or ""}
        return {c: self.session.files(c) for c in wanted if c}

    def lineage_out(self, k: int) -> Path:
        """Where lineage k's operator keeps its files (notes.md, llm.jsonl)."""
        out = self.session.ws.out
        if not self.population:
            return out
        (out / f"island-{k}").mkdir(exist_ok=True)
        return out / f"island-{k}"

    def donor(self, k: int) -> Donor | None:
        member = self.populations.donor(k, self._distance)
        return (member, self.session.files(member.commit)) if member is not None else None

    def _distance(self, a: Individual, b: Individual) -> float:
        """How far apart two members are: in the declared space's unit cube where both have values
        there, else 1 for members of different islands (a code change has no distance here)."""
        space = self.plan.space or {}
        pa, pb = self.session.records[a.n - 1].params, self.session.records[b.n - 1].params
        names = [n for n, p in space.items() if p.type != "categorical" and n in pa and n in pb]
        if not names:
            return float(a.island != b.island)
        return sum((space[n].to_unit(pa[n]) - space[n].to_unit(pb[n])) ** 2 for n in names) ** 0.5

    # --- prepare

    def prepare(self, cand: Candidate) -> Flight | None:
        """The flight to evaluate, or None when the candidate was recorded without running."""
        flight = Flight(cand, time.monotonic())
        if cand.kind == "crossover":
            flight.cand = cand = self._compose(cand)
        if cand.kind in ("invalid", "rejected"):
            return self._settle(flight, Status(cand.kind), cand.reason)
        if cand.kind == "baseline":
            flight.commit = self.plan.start
        else:
            flight.commit = self._commit(cand)
            why = self.plan.check_candidate(cand.parent_files, cand.files)
            if why:
                return self._settle(flight, Status.REJECTED, why)
            why = malformed(cand.files)  # a target that does not parse never runs nor counts
            if why:
                return self._settle(flight, Status.INVALID, why)
            why, twin = self.novelty.check(cand)
            if why:
                flight.cand = replace(cand, extra={**cand.extra, **twin})
                return self._settle(flight, Status.INVALID, why)
        self.novelty.flying(cand)
        return flight

    def _compose(self, cand: Candidate) -> Candidate:
        """A crossover's child: git's three-way merge of its two parents (the next pair when a merge
        conflicts or changes nothing)."""
        assert cand.other is not None
        why = ""
        for tries, (ours, theirs) in enumerate([(cand.parent, cand.other), *cand.alternatives], 1):
            composed = compose(self.session.ws.git, sorted(self.plan.target_files), ours, theirs)
            if isinstance(composed, str):
                why = why or composed
                continue
            parent_files, changed = composed
            extra = {**cand.extra, "parents": [ours, theirs], **({"merge_tries": tries} if tries > 1 else {})}
            description = f"crossover {ours[:7]} × {theirs[:7]}"
            return replace(
                cand, parent=ours, other=theirs, kind="change", files=changed, parent_files=parent_files,
                extra=extra, description=description, alternatives=(),
            )  # fmt: skip
        tried = 1 + len(cand.alternatives)
        return replace(cand, kind="invalid", reason=f"{why} ({cand.description}; {tried} pair(s) tried)")

    def _commit(self, cand: Candidate) -> str:
        git, ledger = self.session.ws.git, self.session.ledger
        style = f" [{cand.style}]" if cand.style else ""
        where = f"island-{cand.lineage} g{cand.generation}" if self.population else f"#{cand.generation + 2}"
        message = f"metaexp {where}{style}: {cand.description}"[:200] + "\n"
        tree = git.tree_with(ledger.listing(cand.parent), cand.files)
        return git.commit(tree, cand.parents, message)

    def _settle(self, flight: Flight, status: Status, reason: str) -> None:
        """Record a candidate that never runs."""
        flight.status, flight.reason = status, reason
        self.record(flight)

    # --- evaluate

    def job(self, flight: Flight) -> Job:
        cand = flight.cand
        # METAEXP_EXPERIMENT: an island's proposal count; a single lineage's experiment number
        label = (
            cand.generation if self.population else cand.generation + (1 if cand.kind == "baseline" else 2)
        )
        env = {"METAEXP_ISLAND": str(cand.lineage)} if self.population else {}
        noise = None
        if self.parent_tests is not None and cand.kind != "baseline":
            noise = self.parent_tests.payload(cand)
        # a crash streak one short of the abort: if this one fails too, its parent runs again (a probe),
        # within budget.max_evaluations (a probe is a harness run)
        tally, limit, cap = (
            self.session.tally,
            self.spec.budget.abort_on_consecutive_crashes,
            self.spec.budget.max_evaluations,
        )
        probe = limit is not None and tally.crash_streak >= limit - 1
        probe = probe and (cap is None or tally.evaluations + 2 <= cap)
        budget = 0
        if cand.tune is not None:  # every tuning run counts against budget.max_evaluations
            budget = cand.tune.budget
            budget = budget if cap is None else max(1, min(budget, cap - tally.evaluations - probe))
        return Job(cand, label, env, noise, budget, probe)

    # --- decide

    def evaluated(self, flight: Flight, evaluation: Evaluation) -> bool:
        """Decide; True when the decision waits for the held-out validation of a new best."""
        flight.evaluation = evaluation
        if evaluation.tuned is not None:
            self._tuned(flight, evaluation.tuned)
        if evaluation.test is not None and self.parent_tests is not None:
            self.parent_tests.absorb(evaluation.test.incumbent_runs)  # before the next child is submitted
        cand, outcome = flight.cand, evaluation.outcome
        pop = self.populations.pops[cand.lineage]
        incumbent = self.populations.metrics.get(cand.parent)
        assert flight.commit is not None
        test = evaluation.test
        flight.status, flight.reason = decide(
            self.spec, self.objective, pop, cand, flight.commit, outcome, test, incumbent
        )
        return self.spec.harness.validation is not None and self._new_best(flight)

    def _tuned(self, flight: Flight, tuned: Candidate) -> None:
        """The tuned constants are the candidate: its files, params and description, and a commit."""
        self.novelty.landed(flight.cand)
        changed = tuned.files != flight.cand.files
        proposed = {"proposed_fingerprint": fingerprint(flight.cand.tree)} if changed else {}
        flight.cand = replace(tuned, tune=None, extra={**tuned.extra, **proposed})  # a repeat of the
        # proposed edit is a duplicate too: it would run all its tuning again
        self.novelty.flying(flight.cand)
        if changed:
            flight.commit = self._commit(flight.cand)

    def _new_best(self, flight: Flight) -> bool:
        assert flight.status is not None
        value = self.objective.value(flight.outcome.metrics) if not flight.status.failed else None
        best = self.session.tally.best
        return (
            flight.status.accepted
            and value is not None
            and self.objective.is_better(value, best.value if best else None)
        )

    def validated(self, flight: Flight, result: dict[str, object], log: str) -> None:
        flight.validation, flight.validation_log = result, log

    # --- record

    def record(self, flight: Flight) -> None:
        """Write the experiment, move its branches, tell its lineage; then a population's migrants."""
        rec = self._row(flight)
        self._write(rec, flight.logs)
        self.tell(rec.island, rec, flight.cand.tree or None)
        if self.population and rec.best and rec.n != 1:  # every island hears of a new best
            for k in range(self.spec.strategy.island_count):
                if k != rec.island:
                    self.tell(k, rec, None)
        if self.populations.lines_due(self.session.tally.ran) and rec.status.harness_ran:
            self.island_lines()
        for migrant in self.populations.migrants(rec, lambda n: self.session.records[n - 1]):
            migrant = replace(migrant, n=self.session.tally.total + 1)
            self._write(migrant, {})
            assert migrant.commit is not None
            self.tell(migrant.island, migrant, self.session.files(migrant.commit))

    def _row(self, flight: Flight) -> ExperimentRecord:
        assert flight.status is not None
        value = self.objective.value(flight.outcome.metrics) if not flight.status.failed else None
        best = self.session.tally.best
        is_best = flight.status.accepted and value is not None
        is_best = is_best and self.objective.is_better(value, best.value if best else None)  # type: ignore[arg-type]
        now = time.monotonic()
        wall, self._mark = now - self._mark, now
        n = self.session.tally.total + 1
        return build_record(n, flight, value, is_best, self.spec.seed, self.spec.operator.kind, wall)

    def _write(self, rec: ExperimentRecord, logs: Mapping[str, str]) -> None:
        moves = self.populations.observe(rec)
        if rec.best and rec.commit:
            moves[refs.best_ref(self.spec)] = rec.commit
        if not self.population and rec.status.accepted and rec.commit and rec.n > 1:
            moves[refs.branch(self.spec.tag)] = rec.commit
        self.session.write(rec, moves, logs)
        self._remember(rec)
        if self.on_record is not None:
            halt = self.on_record(rec, self.session.tally)
            self.session.stopping.halt = halt or self.session.stopping.halt

    def _remember(self, rec: ExperimentRecord) -> None:
        self.novelty.remember(rec)
        if self.parent_tests is not None:
            self.parent_tests.learn(rec)

    def island_lines(self) -> None:
        """A line per island on the progress output, and population.json for the report."""
        if not self.population:
            return
        self.populations.save(self.session.ws.out)
        for line in self.populations.island_lines():
            self.session.progress.note(line)

    def forget(self, flight: Flight) -> None:
        """A flight that will not be recorded (its lineage died, or the run stops before it runs)."""
        self.novelty.landed(flight.cand)
