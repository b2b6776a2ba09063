"""The hybrid operator: the LLM edits structure, Optuna tunes the constants, each sees the other.

Each proposal is drawn from `operator.schedule` (shares of the evaluations by default: an edit
costs its tuning budget): a structural arm (an LLM edit, or with `llm: null` a bold restart of the
constants) whose candidate the loop tunes for up to `tune.budget` evaluations before deciding
(metaexp/tuning.py), or a numeric arm, one Optuna step over the constants of the
incumbent's structure, learned from every evaluation of that structure (operators/trials.py). The
LLM's prompt carries what the numeric search learned.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from metaexp.candidate import Candidate, Knob, TunePlan
from metaexp.errors import SpecError
from metaexp.operators import Context, InvalidProposal, LineageState
from metaexp.operators.knobs import find_knobs
from metaexp.operators.params import written
from metaexp.operators.prompt import OptimiserState
from metaexp.operators.samplers import import_ahead, make_sampler
from metaexp.operators.styles import StyleMix
from metaexp.operators.trials import Trials
from metaexp.operators.tuning import adapted
from metaexp.operators.values import apply_values, read_values
from metaexp.record.records import ExperimentRecord

RESTART_STYLE = "bold"  # llm: null: the structural arm is a restart this far from the incumbent


class HybridOperator:
    name = "hybrid"

    def __init__(self, ctx: Context) -> None:
        _refuse_unsupported(ctx)
        self.op = ctx.spec.operator
        self.space = ctx.space
        self.styles = ctx.styles
        self.restart = StyleMix(RESTART_STYLE, ctx.root).pick(random.Random(0))
        self.trials = Trials(ctx.spec.direction)
        self.spent = {"structural": 0, "numeric": 0}  # evaluations (at least 1 per proposal) per arm
        self.tuning_gains: list[float | None] = []  # what each tuning gained over the values as written
        for rec in ctx.history:
            self._spend(rec)
            self.trials.add(rec)
        try:
            knobs = find_knobs(ctx.files, ctx.space, self.trials.seen)
        except InvalidProposal as exc:
            raise SpecError(f"operator.kind hybrid: {exc}") from None
        if not knobs and self.op.llm is None:
            raise SpecError(
                "operator.kind hybrid with llm: null tunes numeric constants, and the target files "
                f"({', '.join(ctx.files)}) have none: add UPPER_CASE constants, `# tune:` markers or a space"
            )
        if self.op.sampler == "surrogate":
            raise SpecError(
                "operator.sampler surrogate: only for params over a discrete space; the hybrid tunes "
                "continuous constants (use tpe, cmaes, random or gp)"
            )
        make_sampler(self.op.sampler, 0)  # fail early on a sampler that cannot run here
        make_sampler(self.op.tune.sampler, 0)
        import_ahead(self.op.sampler)
        import_ahead(self.op.tune.sampler)
        self.llm = self._llm_operator(ctx) if self.op.llm is not None else None

    # --- the Operator protocol

    def propose(self, state: LineageState, n: int, rng: random.Random) -> Candidate:
        structural = self._structural(rng.random())
        knobs = self._knobs(state.files)
        if not knobs and self.llm is None:
            raise InvalidProposal("no numeric constants to tune in the current state")
        if structural or not knobs:
            if self.llm is not None:
                try:
                    edit = self.llm.propose(state, n, rng)
                except InvalidProposal as exc:  # its turn was spent all the same (the schedule counts it)
                    exc.extra = {**exc.extra, "arm": "llm"}
                    raise
                return self._tuned(edit, state, "llm", rng)
            return self._tuned(self._restart(state, knobs, rng), state, "restart", rng)
        return self._numeric(state, knobs, rng)

    def observe(self, record: ExperimentRecord) -> None:
        self._spend(record)
        self.trials.add(record)
        if self.llm is not None:
            self.llm.observe(record)

    def observe_shared(self, record: ExperimentRecord) -> None:
        if self.llm is not None:
            self.llm.observe_shared(record)

    def params_of(self, files: Mapping[str, bytes]) -> dict[str, Any]:
        try:
            return read_values(_located(self._knobs(files)), files)
        except InvalidProposal:
            return {}

    # --- the arms

    def _numeric(self, state: LineageState, knobs: dict[str, Knob], rng: random.Random) -> Candidate:
        """One Optuna step over the knobs, from the evaluations of the incumbent's structure. A step
        written whole (style global) is the sampler's own trial, kept in the record as params keeps
        it, so CMA-ES goes on with its generations across steps; a narrowed step is a point."""
        style = self.styles.pick(rng)
        study = self.trials.study(state.commit, knobs)
        current = read_values(_located(knobs), state.files)
        # CMA-ES's first generation is centred on the incumbent's constants (not the middle of the
        # space); once it has generations of its own, they go on from where they are
        inside = all(knob.param.contains(current[name]) for name, knob in knobs.items())
        x0 = current if self.op.sampler in ("cmaes", "lq-cmaes") and inside else None
        study.sampler = make_sampler(self.op.sampler, rng.randrange(2**31), x0=x0)
        trial = study.ask({name: knob.param.distribution() for name, knob in knobs.items()})
        space = {name: knob.param for name, knob in knobs.items()}
        extra = _extra("params", knobs)
        return written(study, trial, _located(knobs), space, state, current, style, style.whole, rng, extra)

    def _restart(self, state: LineageState, knobs: dict[str, Knob], rng: random.Random) -> Candidate:
        """llm: null: a bold jump of the constants, which the loop then tunes (a memetic restart)."""
        names = sorted(n for n, k in knobs.items() if k.param.type != "categorical") or sorted(knobs)
        count = len(names) if self.restart.count is None else min(self.restart.count, len(names))
        current = read_values(_located(knobs), state.files)
        changes = {}
        for name in rng.sample(names, count):
            param = knobs[name].param
            if param.type == "categorical":
                changes[name] = rng.choice(param.choices or [current[name]])
            else:
                here = param.to_unit(min(max(current[name], param.low), param.high))
                changes[name] = param.from_unit(here + rng.gauss(0.0, self.restart.scale))
        files, params, description = apply_values(_located(knobs), state.files, changes)
        if not files:
            raise InvalidProposal("the restart drew the current values", _extra("restart", knobs))
        return Candidate(state.commit, files, f"restart: {description}", self.restart.name, params)

    def _tuned(self, cand: Candidate, state: LineageState, arm: str, rng: random.Random) -> Candidate:
        """The candidate with its knobs and a request to tune them (none when it has none)."""
        files = {**state.files, **cand.files}
        try:
            knobs = self._knobs(files)
        except InvalidProposal as exc:
            raise InvalidProposal(str(exc), {**cand.extra, "arm": arm}, cand.usage) from None
        extra = {**cand.extra, **_extra(arm, knobs)}
        params = read_values(_located(knobs), files)  # as written: the numeric arm learns from them
        if not knobs or self.op.tune.budget < 1:
            return replace(cand, params=params, extra=extra)
        radius, budget = adapted(self.tuning_gains, self.op.tune.budget)  # wider where tuning helps
        plan = TunePlan(knobs, self.op.tune.sampler, budget, rng.randrange(2**31), radius)
        return replace(cand, params=params, extra=extra, tune=plan)

    # --- helpers

    def _structural(self, draw: float) -> bool:
        """Whether this proposal is structural. `counts: proposals`: a draw under the llm share.
        `counts: evaluations` (the default): the arm whose cost brings the share spent so far nearer
        p (an edit costs its tuning runs, a numeric step one; a proposal that ran nothing costs
        one), so `llm: 0.3` is 30 % of the harness runs; the draw decides only the first proposal.
        Replayed from the records, a resumed run chooses as an uninterrupted one would."""
        schedule = self.op.schedule
        p = schedule.llm / (schedule.llm + schedule.params)
        spent, total = self.spent["structural"], self.spent["structural"] + self.spent["numeric"]
        if schedule.counts == "proposals" or p in (0.0, 1.0) or total == 0:
            return draw < p
        cost = max(1, adapted(self.tuning_gains, self.op.tune.budget)[1])  # what an edit will cost
        return abs((spent + cost) / (total + cost) - p) <= abs(spent / (total + 1) - p)

    def _spend(self, record: ExperimentRecord) -> None:
        if "tune" in record.extra:
            self.tuning_gains.append(record.extra["tune"].get("gain"))
        arm = record.extra.get("arm")
        if arm in ("llm", "restart", "params"):
            cost = max(1, len(record.extra.get("runs", []))) if record.status.harness_ran else 1
            self.spent["numeric" if arm == "params" else "structural"] += cost

    def _knobs(self, files: Mapping[str, bytes]) -> dict[str, Knob]:
        return find_knobs(files, self.space, self.trials.seen)

    def optimiser_state(self, state: LineageState) -> OptimiserState:
        knobs = self._knobs(state.files)
        current = read_values(_located(knobs), state.files)
        return self.trials.summary(state.commit, knobs, current, self.op.tune.sampler, self.op.tune.budget)

    def _llm_operator(self, ctx: Context) -> Any:
        from metaexp.operators.llm import LLMOperator

        assert self.op.llm is not None
        spec = ctx.spec.model_copy(update={"operator": self.op.llm})
        llm = LLMOperator(replace(ctx, spec=spec, styles=StyleMix(self.op.llm.style, ctx.root)))
        llm.optimiser = self.optimiser_state
        return llm


def _located(knobs: Mapping[str, Knob]) -> dict[str, str]:
    return {name: knob.path for name, knob in knobs.items()}


def _extra(arm: str, knobs: Mapping[str, Knob]) -> dict[str, Any]:
    """What the record keeps: the arm, and the inferred bounds (so a resumed run infers the same)."""
    inferred = {n: k.param.model_dump(exclude_none=True) for n, k in knobs.items() if k.source == "constant"}
    return {"arm": arm, "inferred": inferred}


def _refuse_unsupported(ctx: Context) -> None:
    spec = ctx.spec
    if spec.noise.method != "none":
        raise SpecError("operator.kind hybrid: tuning under noise.method (repeats) is not supported yet")
    if spec.objective.mode == "pareto":
        raise SpecError(
            "operator.kind hybrid needs one decision value: objective.mode pareto is not supported"
        )
