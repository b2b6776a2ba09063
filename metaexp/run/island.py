"""One island: its population, its own operator, and its decisions. Plain Python; Ray wraps it.

An island proposes children of parents chosen from its population (DEAP
selection), decides what a measured child means for it (keep = admitted,
explore, escape, discard), and learns from the recorded outcome. It never
writes anything: the driver's ledger records, and the island is rebuilt
from those records whenever it has to start again.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaexp.candidate import line_count
from metaexp.decide.population import new_population, replay
from metaexp.decide.selectors import Individual
from metaexp.operators import InvalidProposal, LineageState, Operator, RejectedProposal
from metaexp.operators.styles import StyleMix
from metaexp.record.records import ExperimentRecord, Status
from metaexp.run.plan import Plan


@dataclass(frozen=True)
class Proposal:
    island: int
    generation: int  # the island's own proposal count
    kind: str  # candidate | invalid | rejected | crossover
    parent: str
    tree: dict[str, bytes] = field(default_factory=dict)  # every target file of the child
    changed: dict[str, bytes] = field(default_factory=dict)
    before: dict[str, bytes] = field(default_factory=dict)  # the parent's version of each changed file
    description: str = ""
    style: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    escape: bool = False
    other: str | None = None  # crossover: the second parent
    tune: Any = None  # hybrid: the TunePlan the evaluation task runs before the decision


class Island:
    def __init__(
        self,
        k: int,
        plan: Plan,
        records: list[ExperimentRecord],
        files: Mapping[str, Mapping[str, bytes]],
        out: Path | None,
    ) -> None:
        self.k, self.plan, self.spec = k, plan, plan.spec
        self.islands = self.spec.strategy.island_count
        self.pop = replay(self.spec, records, self.islands)[k] if records else new_population(self.spec)
        self.files: dict[str, dict[str, bytes]] = {c: dict(f) for c, f in files.items()}
        self.values = {r.commit: (r.metrics, r.value) for r in records if r.commit and r.value is not None}
        mine = [r for r in records if r.island == k or r.n == 1]
        self.generation = sum(1 for r in mine if r.n > 1 and r.status is not Status.MIGRATE)
        self.baseline = records[0].commit if records else plan.start
        top = self.pop.best()
        self.operator: Operator = plan.operator(
            mine, self.files.get(top.commit if top else "", plan.target_files), out
        )
        self._pending: dict[int, tuple[Proposal, random.Random]] = {}
        self._escaping = False

    # --- proposing

    def propose(self, donor: tuple[Individual, dict[str, bytes]] | None = None) -> Proposal:
        g = self.generation
        self.generation += 1
        rng = random.Random(f"metaexp:{self.spec.seed}:{self.k}:{g}")
        s = self.spec.strategy
        escape = bool(s.escape and self.pop.stagnation >= s.escape.patience and not self._escaping)
        if not escape and s.crossover_rate and len(self.pop.members) >= 2 and rng.random() < s.crossover_rate:
            a, b = self._two_parents(rng)
            if a.commit != b.commit:
                prop = Proposal(
                    self.k,
                    g,
                    "crossover",
                    a.commit,
                    description=f"crossover {a.commit[:7]} × {b.commit[:7]}",
                    other=b.commit,
                )
                self._pending[g] = (prop, rng)
                return prop
        parent, files = self._parent(rng, escape, donor)
        self._escaping = self._escaping or escape
        metrics, value = self.values.get(parent, ({}, None))
        state = LineageState(parent, files, metrics, value)
        try:
            with self._style_for(escape):
                cand = self.operator.propose(state, g + 2, rng)
        except InvalidProposal as exc:
            kind = "rejected" if isinstance(exc, RejectedProposal) else "invalid"
            prop = Proposal(
                self.k,
                g,
                kind,
                parent,
                reason=str(exc),
                extra=exc.extra,
                usage=exc.usage,
                escape=escape,
                description=kind,
            )
            self._pending[g] = (prop, rng)
            return prop
        prop = Proposal(
            self.k,
            g,
            "candidate",
            parent,
            tree={**files, **cand.files},
            changed=cand.files,
            before={p: files.get(p, b"") for p in cand.files},
            description=cand.description,
            style=cand.style,
            params=cand.params,
            extra=cand.extra,
            usage=cand.usage,
            escape=escape,
            tune=cand.tune,
        )
        self._pending[g] = (prop, rng)
        return prop

    def _two_parents(self, rng: random.Random) -> tuple[Individual, Individual]:
        picked = self.pop.parents(2, rng, self.spec.strategy.tournament_size)
        if picked[0].commit == picked[1].commit:
            others = [m for m in self.pop.members if m.commit != picked[0].commit]
            picked[1] = rng.choice(others) if others else picked[1]
        return picked[0], picked[1]

    def _parent(
        self, rng: random.Random, escape: bool, donor: tuple[Individual, dict[str, bytes]] | None
    ) -> tuple[str, dict[str, bytes]]:
        action = self.spec.strategy.escape.action if escape and self.spec.strategy.escape else ""
        if action == "restart_from_hall_of_fame" and donor is not None:
            self.files[donor[0].commit] = dict(donor[1])
            return donor[0].commit, dict(donor[1])
        if action == "random_restart":
            return self.baseline, self.files.get(self.baseline, dict(self.plan.target_files))
        chosen = self.pop.parents(1, rng, self.spec.strategy.tournament_size)[0]
        return chosen.commit, self.files[chosen.commit]

    @contextmanager
    def _style_for(self, escape: bool) -> Iterator[None]:
        """An escape proposes boldly (radically, for an LLM), whatever the island's style."""
        styles = getattr(self.operator, "styles", None)
        if not escape or styles is None:
            yield
            return
        self.operator.styles = StyleMix(
            "radical" if self.operator.name == "llm" else "bold",  # type: ignore[attr-defined]
            self.plan.root,
        )
        try:
            yield
        finally:
            self.operator.styles = styles  # type: ignore[attr-defined]

    # --- deciding and learning

    def conclude(
        self,
        generation: int,
        commit: str,
        failed: Status | None,
        value: float | None,
        metrics: dict[str, float] | None = None,
        better: bool | None = None,
    ) -> Status:
        """What the measured child means for this island (the population changes on observe).

        `better`: a noisy harness's paired test against the parent; False bars admission."""
        from metaexp.decide.population import fitness_values

        prop, rng = self._pending[generation]
        if failed is not None:
            return failed
        assert value is not None
        if prop.escape:
            return Status.ESCAPE
        values = fitness_values(metrics or {}, value, self.spec)
        child = Individual(commit, 0, values, self._features(prop, metrics or {}), self.k)
        if better is not False and self.pop.consider(child):
            return Status.KEEP
        s = self.spec.strategy
        if (s.explore_every and (generation + 2) % s.explore_every == 0) or rng.random() < s.explore_rate:
            return Status.EXPLORE
        return Status.DISCARD

    def _features(self, prop: Proposal, metrics: dict[str, float]) -> tuple[float, ...]:
        from metaexp.decide.population import features_of

        probe = ExperimentRecord(
            0, None, None, "", Status.DISCARD, "", metrics=metrics, extra={"lines": line_count(prop.tree)}
        )
        return features_of(probe, self.spec)

    def observe(self, rec: ExperimentRecord, tree: Mapping[str, bytes] | None = None) -> None:
        """A recorded experiment of this island (or a migrant it received)."""
        pending = self._pending.pop(rec.generation, None) if rec.status is not Status.MIGRATE else None
        if rec.commit and rec.value is not None:
            self.values[rec.commit] = (rec.metrics, rec.value)
            files = tree if tree is not None else (pending[0].tree if pending else None)
            if files and rec.status.accepted:
                self.files[rec.commit] = dict(files)
        if rec.status is Status.ESCAPE or (pending and pending[0].escape):
            self._escaping = False
        self.pop.observe(rec, self.spec)
        if rec.status is not Status.MIGRATE:
            self.operator.observe(rec)
        self._forget()

    def _forget(self) -> None:
        """Keep the files of members, pending parents and the baseline only."""
        keep = {m.commit for m in self.pop.members} | {p.parent for p, _ in self._pending.values()}
        keep |= {p.other for p, _ in self._pending.values() if p.other} | {self.baseline}
        self.files = {c: f for c, f in self.files.items() if c in keep}

    def summary(self) -> dict[str, Any]:
        top = self.pop.best()
        return {
            "island": self.k,
            "best": top.values[0] if top else None,
            "best_commit": top.commit if top else None,
            "best_n": top.n if top else None,
            "size": len(self.pop.members),
            "stagnation": self.pop.stagnation,
            "generation": self.generation,
        }

    def migrants(self, count: int) -> list[tuple[Individual, dict[str, bytes]]]:
        from metaexp.decide.selectors import fitness

        ranked = sorted(self.pop.members, key=lambda m: fitness(m, self.pop.signs), reverse=True)
        return [(m, self.files[m.commit]) for m in ranked[:count] if m.commit in self.files]
