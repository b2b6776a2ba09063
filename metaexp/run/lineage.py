"""A lineage: its population, its own operator, and the ask/tell protocol every scheduler drives.

`ask` proposes the next candidate: a child of a parent its population selects (a single lineage's
ratchet has one member, an island a DEAP-selected population), an escape when the population has
stagnated, or a crossover of two members for the driver to compose. `tell` hears a recorded
experiment (its own, or a migrant it received) and updates the population and the operator. A
lineage writes nothing: it is rebuilt from the records whenever it starts again, in the driver's
process (serial) or as a Ray actor (parallel), and proposes the same candidates either way.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from metaexp.candidate import Candidate
from metaexp.crashpoints import crashpoint
from metaexp.decide.population import replay
from metaexp.decide.selectors import Individual
from metaexp.operators import InvalidProposal, LineageState, Operator, RejectedProposal, experiment_rng
from metaexp.operators.styles import StyleMix
from metaexp.record.records import ExperimentRecord, Status
from metaexp.run.plan import Plan

Donor = tuple[Individual, dict[str, bytes]]  # a hall-of-fame member and its files (restart escapes)
CROSSOVER_PAIRS = 3  # pairs of members tried for one crossover before it falls back to a mutation


class Lineage:
    def __init__(
        self,
        k: int,
        plan: Plan,
        records: list[ExperimentRecord],
        files: Mapping[str, Mapping[str, bytes]],
        out: Path | None,
        pending: Sequence[Candidate] = (),
    ) -> None:
        """Lineage k after `records` (the baseline first); `files`: the target files of its
        members and of the baseline, by commit; `pending`: candidates it asked for that are still
        in flight (a lineage rebuilt mid-run proposes after them, and is told their records)."""
        self.k, self.plan, self.spec = k, plan, plan.spec
        self.single = not self.spec.strategy.is_population
        self.pop = replay(self.spec, records, self.spec.strategy.island_count)[k]
        self.files: dict[str, dict[str, bytes]] = {c: dict(f) for c, f in files.items()}
        self.values = {r.commit: (r.metrics, r.value) for r in records if r.commit and r.value is not None}
        mine = [r for r in records if r.island == k or r.n == 1]
        self.generation = _next_generation(mine, pending)
        self.baseline = records[0].commit or plan.start
        top = self.pop.best()
        self.operator: Operator = plan.operator(
            mine, self.files.get(top.commit if top else "", plan.target_files), out, k
        )
        self._asked: dict[int, Candidate] = {c.generation: c for c in pending}  # not yet told
        self._escaping = False
        for rec in records:  # what the other islands found: a rebuilt lineage knows it too
            if rec.island != k and rec.best and rec.n != 1:
                self._share(rec)

    # --- ask

    def ask(self, donor: Donor | None = None) -> Candidate:
        crashpoint(f"ask:{self.k}")
        g = self.generation
        self.generation += 1
        rng = self.rng(g)
        s = self.spec.strategy
        escape = bool(s.escape and self.pop.stagnation >= s.escape.patience and not self._escaping)
        converged = getattr(self.operator, "converged", None)
        if escape and s.escape and self._restarts() and converged and not converged(s.escape.converged):
            escape = False  # a search still converging (CMA-ES) is not left for a restart yet
        cand = None
        crossing = not escape and s.crossover_rate and len(self.pop.members) >= 2
        drawn = s.initial == "random" and not self.single and hasattr(self.operator, "initial")
        if drawn and g < s.population - 1:
            cand = self._initial(g, rng)  # the population starts diverse
        elif crossing and rng.random() < s.crossover_rate:
            cand = self._crossover(rng)
        if cand is None:
            cand = self._propose(g, rng, escape, donor)
        cand = replace(cand, lineage=self.k, generation=g, escape=escape, draw=rng.random())
        self._asked[g] = cand
        return cand

    def rng(self, g: int) -> random.Random:
        """One RNG per proposal, so a resumed lineage proposes what an uninterrupted one would. A
        single lineage's g-th proposal is experiment g + 2 (the baseline is 1), seeded as such."""
        if self.single:
            return experiment_rng(self.spec.seed, g + 2)
        return random.Random(f"metaexp:{self.spec.seed}:{self.k}:{g}")

    def _crossover(self, rng: random.Random) -> Candidate | None:
        """A child of two members: the operator's own crossover of their values where it has one
        (another pair is tried when a child would equal a parent), else git's merge of the two
        commits, composed by the driver (with more pairs to try when a merge fails)."""
        pairs = [self._pair(rng) for _ in range(CROSSOVER_PAIRS)]
        pairs = [(a, b) for a, b in pairs if a.commit != b.commit]
        cross = getattr(self.operator, "crossover", None)
        if cross is None and pairs:
            (a, b), rest = pairs[0], tuple((x.commit, y.commit) for x, y in pairs[1:])
            description = f"crossover {a.commit[:7]} × {b.commit[:7]}"
            return Candidate(
                a.commit, {}, description, "crossover", kind="crossover", other=b.commit, alternatives=rest
            )
        for a, b in pairs:
            child = cross(self._state(a.commit), self._state(b.commit), rng) if cross else None
            if child is not None:
                return replace(child, parent_files=dict(self.files[a.commit]))
        return None

    def _pair(self, rng: random.Random) -> tuple[Individual, Individual]:
        picked = self.pop.parents(2, rng, self.spec.strategy.tournament_size)
        if picked[0].commit == picked[1].commit:
            others = [m for m in self.pop.members if m.commit != picked[0].commit]
            picked[1] = rng.choice(others) if others else picked[1]
        return picked[0], picked[1]

    def _state(self, commit: str) -> LineageState:
        metrics, value = self.values.get(commit, ({}, None))
        return LineageState(commit, self.files[commit], metrics, value)

    def _propose(self, g: int, rng: random.Random, escape: bool, donor: Donor | None) -> Candidate:
        parent, files = self._parent(rng, escape, donor)
        self._escaping = self._escaping or escape
        metrics, value = self.values.get(parent, ({}, None))
        state = LineageState(parent, files, metrics, value)
        restart = escape and self._restarts() and hasattr(self.operator, "restart")
        try:
            if restart:  # a fresh point and a fresh search (IPOP for CMA-ES), never the baseline again
                cand = self.operator.restart(state, g + 2, rng)  # type: ignore[attr-defined]
                return replace(cand, parent_files=dict(files), extra={**cand.extra, "restart": True})
            with self._style_for(escape):
                cand = self.operator.propose(state, g + 2, rng)
        except InvalidProposal as exc:
            return _refused(parent, files, exc)
        return replace(cand, parent_files=dict(files))

    def _initial(self, g: int, rng: random.Random) -> Candidate:
        """One of the first members of a population that starts diverse: a fresh point, as a child
        of the baseline (strategy.initial: random)."""
        files = self.files.get(self.baseline, dict(self.plan.target_files))
        metrics, value = self.values.get(self.baseline, ({}, None))
        try:
            cand = self.operator.initial(  # type: ignore[attr-defined]
                LineageState(self.baseline, files, metrics, value), g + 2, rng
            )
        except InvalidProposal as exc:
            return _refused(self.baseline, files, exc)
        return replace(cand, parent_files=dict(files))

    def _restarts(self) -> bool:
        escape = self.spec.strategy.escape
        return escape is not None and escape.action in ("random_restart", "restart_from_hall_of_fame")

    def _parent(self, rng: random.Random, escape: bool, donor: Donor | None) -> tuple[str, dict[str, bytes]]:
        action = self.spec.strategy.escape.action if escape and self.spec.strategy.escape else ""
        if action == "restart_from_hall_of_fame" and donor is not None:
            self.files[donor[0].commit] = dict(donor[1])
            return donor[0].commit, dict(donor[1])
        if action == "random_restart" and not hasattr(self.operator, "restart"):
            return self.baseline, self.files.get(self.baseline, dict(self.plan.target_files))
        chosen = self.pop.parents(1, rng, self.spec.strategy.tournament_size)[0]
        return chosen.commit, self.files[chosen.commit]

    @contextmanager
    def _style_for(self, escape: bool) -> Iterator[None]:
        """An escape proposes boldly (radically, for an LLM), whatever the lineage's style."""
        styles = getattr(self.operator, "styles", None)
        if not escape or styles is None:
            yield
            return
        bold = "radical" if self.operator.name == "llm" else "bold"
        self.operator.styles = StyleMix(bold, self.plan.root)  # type: ignore[attr-defined]
        try:
            yield
        finally:
            self.operator.styles = styles  # type: ignore[attr-defined]

    # --- tell

    def tell(self, rec: ExperimentRecord, tree: Mapping[str, bytes] | None = None) -> None:
        """A recorded experiment of this lineage (or a migrant it received); `tree`: the child's
        target files as recorded (a crossover's composed, a hybrid's tuned ones)."""
        if rec.island != self.k:  # another island's new best: only for the operator to learn from
            self._share(rec)
            return
        asked = self._asked.pop(rec.generation, None) if rec.status is not Status.MIGRATE else None
        if rec.commit and rec.value is not None:
            self.values[rec.commit] = (rec.metrics, rec.value)
            files = tree if tree is not None else (asked.tree if asked else None)
            if files and rec.status.accepted:
                self.files[rec.commit] = dict(files)
        if rec.status is Status.ESCAPE or (asked and asked.escape):
            self._escaping = False
        self.pop.observe(rec, self.spec)
        if rec.status is not Status.MIGRATE:
            self.operator.observe(rec)
        else:
            self._share(rec)
        self._forget()

    def _share(self, rec: ExperimentRecord) -> None:
        """A migrant received, or another island's new best: operators that learn from the whole
        population (the LLM's prompt) hear of it; it is not this lineage's history."""
        observe_shared = getattr(self.operator, "observe_shared", None)
        if observe_shared is not None:
            observe_shared(rec)

    def _forget(self) -> None:
        """Keep the files of members, of parents still asked about, and of the baseline only."""
        keep = {m.commit for m in self.pop.members} | {self.baseline}
        keep |= {c for cand in self._asked.values() for c in cand.parents}
        self.files = {c: f for c, f in self.files.items() if c in keep}


def _next_generation(mine: list[ExperimentRecord], pending: Sequence[Candidate]) -> int:
    """The next proposal count: after every recorded and every pending proposal (a lineage that
    died with asks unanswered leaves gaps; a ledger written before rows carried a single lineage's
    generation counts its rows)."""
    proposals = [r for r in mine if r.n > 1 and r.status is not Status.MIGRATE]
    highest = max([r.generation for r in proposals] + [c.generation for c in pending], default=-1)
    return max(len(proposals), highest + 1)


def _refused(parent: str, files: dict[str, bytes], exc: InvalidProposal) -> Candidate:
    """What the lineage asks for when its operator could not propose: an invalid (or rejected)
    candidate, recorded without a run."""
    kind = "rejected" if isinstance(exc, RejectedProposal) else "invalid"
    return Candidate(
        parent, {}, kind, extra=exc.extra, usage=exc.usage, kind=kind, reason=str(exc), parent_files=files
    )
