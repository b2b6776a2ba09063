"""An Optuna sampler proposes values for the declared space, through ask/tell.

The sampler works on a private in-memory study, rebuilt from the records, so a resumed run sees
the same history (the run's persistent study is the ledger's). Every proposal is the sampler's own
trial: the values it suggested are told back with the value the evaluation gave (CMA-ES advances
its generations, TPE and GP condition on every evaluation), and the record keeps what the private
study must hold to be rebuilt exactly (`asked`, and the sampler's own `sampler_attrs`).

By default (style `global`) the suggestion is written whole. A narrowing style (`count` values,
each moved at most `scale` of its range toward the suggestion) is opt-in: the evaluated point is
then not the suggestion, so the suggestion is told as a failure and the point as a trial of its own.
A suggestion that repeats a tried point (the current one, or a duplicate the driver recorded
without running it) is told the value that point got.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from metaexp.candidate import Candidate
from metaexp.operators import Context, InvalidProposal, LineageState
from metaexp.operators.samplers import Search, cma_popsize, import_ahead, make_sampler
from metaexp.operators.values import apply_values, child_at, crossed, locate_names, random_point, read_values
from metaexp.record.records import ExperimentRecord

if TYPE_CHECKING:
    import optuna

    from metaexp.operators.styles import Style
    from metaexp.spec.space import Param


class ParamsOperator:
    name = "params"

    def __init__(self, ctx: Context) -> None:
        import optuna

        assert ctx.space is not None, "validated: params needs a space"
        self.space = ctx.space
        self.styles = ctx.styles
        self.sampler_kind = ctx.spec.operator.sampler
        self.cma = self.sampler_kind in ("cmaes", "lq-cmaes")  # a search that restarts with a new study
        if self.sampler_kind == "surrogate":
            from metaexp.operators.surrogate import check_space

            check_space(self.space)  # before anything else: one line naming the parameter
        self.direction = ctx.spec.direction
        self.located = locate_names(self.space, ctx.files, "operator.space")
        self.dists = {name: p.distribution() for name, p in self.space.items()}
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        make_sampler(self.sampler_kind, 0)  # fail early on a sampler that cannot run here
        import_ahead(self.sampler_kind)
        self.restarts = 0
        # island k > 0 centres CMA-ES at its own random point: islands search apart from the start
        x0 = (
            self._random_point(random.Random(f"metaexp:{ctx.spec.seed}:x0:{ctx.lineage}"))
            if ctx.lineage
            else None
        )
        self.search = self._new_search(x0)
        self._pending: dict[int, tuple[optuna.trial.Trial, bool]] = {}  # generation -> (trial, exact)
        for rec in ctx.history:
            self._replay(rec)

    @property
    def study(self) -> optuna.Study:
        return self.search.study

    def _new_search(self, x0: dict[str, Any] | None) -> Search:
        """A fresh CMA-ES at `x0`, its population doubled at each restart (IPOP-CMA-ES); for the
        other samplers the one study goes on (they model the whole space)."""
        import optuna

        if not self.cma and hasattr(self, "search"):
            return self.search
        numeric = [n for n, p in self.space.items() if p.type != "categorical"]
        popsize = cma_popsize(len(numeric), self.sampler_kind) * 2**self.restarts if self.restarts else None
        center = {k: v for k, v in (x0 or {}).items() if k in numeric} or None
        return Search(optuna.create_study(direction=self.direction), center, popsize)

    def _random_point(self, rng: random.Random) -> dict[str, Any]:
        return random_point(self.space, rng)

    def crossover(self, a: LineageState, b: LineageState, rng: random.Random) -> Candidate | None:
        """A child of `a` with some of `b`'s values (a block, or uniform); None when it would equal a
        parent. Told to the sampler as a point of its own (it did not suggest it)."""
        return crossed(self.located, a, b, rng)

    def converged(self, spread: float) -> bool:
        """May a restart leave the current search? Any sampler but CMA-ES: yes (the strategy's
        patience decides alone). CMA-ES: once its newest full generation spans less than `spread`
        of every range (strategy.escape.converged), as IPOP-CMA-ES restarts a search that has
        converged, not one still descending (at d = 5 CMA-ES takes 400-700 evaluations to reach
        0.01 on BBOB's multimodal functions; a fixed patience of 40 restarted it every few
        generations and doubled its best f at 300 evaluations)."""
        if not self.cma:
            return True
        return self.search.converged(self.space, spread)

    def restart(self, state: LineageState, n: int, rng: random.Random) -> Candidate:
        """Leave the local optimum: CMA-ES starts again around a fresh point with a larger
        population; another sampler proposes the fresh point itself."""
        point = self._random_point(rng)
        self.restarts += 1
        self.search = self._new_search(point)
        if self.cma:  # the new search's first suggestion whole, whatever the style
            cand = self.propose(state, n, rng, whole=True)
            extra = {**cand.extra, "x0": point}
            return replace(cand, description=f"restart: {cand.description}", extra=extra)
        self._pending.pop(n - 2, None)
        return child_at(self.located, point, state, "restart")

    def initial(self, state: LineageState, n: int, rng: random.Random) -> Candidate:
        """A member of a population that starts diverse (strategy.initial: random): a point drawn
        uniformly, told to the sampler as a point of its own (it did not suggest it)."""
        return child_at(self.located, self._random_point(rng), state, "initial")

    def propose(self, state: LineageState, n: int, rng: random.Random, whole: bool = False) -> Candidate:
        """The sampler's next suggestion, narrowed by the style (`whole`: as suggested)."""
        style = self.styles.pick(rng)
        # a sampler per proposal, seeded by it: a resumed run asks exactly what this one did (CMA-ES
        # keeps its own state in its trials' attrs, which the records carry)
        self.study.sampler = self.search.sampler(self.sampler_kind, rng.randrange(2**31))
        trial = self.study.ask(self.dists)
        exact = whole or style.whole
        self._pending[n - 2] = (trial, exact)
        current = read_values(self.located, state.files)
        return written(self.study, trial, self.located, self.space, state, current, style, exact, rng)

    def observe(self, record: ExperimentRecord) -> None:
        pending = self._pending.pop(record.generation, None) if record.n > 1 else None
        if pending is None:  # the baseline, or a proposal of an earlier incarnation: learn it as recorded
            self._replay(record)
            return
        trial, exact = pending
        value = value_of(record)
        if exact:
            self._tell(trial, value)
            return
        self._tell(trial, None)  # the evaluated point is not the one asked: tell the truth as a new trial
        if record.status.harness_ran:
            self._add(record, system_attrs={}, value=value)

    def params_of(self, files: Mapping[str, bytes]) -> dict[str, Any]:
        """The values this operator tunes, as they are in `files` (for the baseline's record)."""
        return read_values(self.located, files)

    def _tell(self, trial: optuna.trial.Trial, value: float | None) -> None:
        from optuna.trial import TrialState

        state = TrialState.COMPLETE if value is not None else TrialState.FAIL
        self.study.tell(trial, value, state=state)

    def _replay(self, rec: ExperimentRecord) -> None:
        """Rebuild what observe() left in the private study for this record."""
        if self.cma and rec.extra.get("restart") and "x0" in rec.extra:  # a new search
            self.restarts += 1
            self.search = self._new_search(rec.extra["x0"])
        asked = rec.extra.get("asked")
        value = value_of(rec)
        if asked is not None and rec.extra.get("exact"):  # the sampler's own trial, with its attrs
            self._add(rec, system_attrs=rec.extra.get("sampler_attrs", {}), params=asked, value=value)
            return
        if asked is not None:  # the suggestion the evaluated point was derived from, told FAIL
            self._add(rec, system_attrs={}, params=asked, value=None)
        if rec.status.harness_ran:
            self._add(rec, system_attrs={}, value=value)

    def _add(
        self,
        rec: ExperimentRecord,
        system_attrs: dict[str, Any],
        params: dict[str, Any] | None = None,
        value: float | None = None,
    ) -> None:
        from optuna.trial import TrialState, create_trial

        chosen = rec.params if params is None else params
        values = {k: v for k, v in chosen.items() if k in self.space and self.space[k].contains(v)}
        if len(values) != len(self.space):
            return  # not a point of this space (e.g. the space changed since)
        self.study.add_trial(
            create_trial(
                state=TrialState.COMPLETE if value is not None else TrialState.FAIL,
                value=value,
                params=values,
                distributions=self.dists,
                system_attrs=system_attrs,
            )
        )


def written(
    study: optuna.Study,
    trial: optuna.trial.Trial,
    located: Mapping[str, str],
    space: Mapping[str, Param],
    state: LineageState,
    current: Mapping[str, Any],
    style: Style,
    exact: bool,
    rng: random.Random,
    extra: Mapping[str, Any] | None = None,
) -> Candidate:
    """The candidate that writes the sampler's suggestion for `trial` into the state's files: whole
    and exactly (`exact`), or narrowed by the style. Its record keeps what a private study rebuilt
    from the records must hold: the suggestion (`asked`), `exact` (only then is the evaluation the
    trial's own) and the sampler's system attrs (CMA-ES's generation and state). A suggestion equal
    to the current point is invalid; written whole, it scored the parent's value (its `twin`)."""
    count, scale = (None, 1.0) if exact else (style.count, style.scale)
    changes = narrowed(space, current, trial.params, count, scale, rng)
    files, params, description = apply_values(located, state.files, changes, exact=exact)
    kept: dict[str, Any] = {**(extra or {}), "asked": trial.params, "exact": exact}
    attrs = study.get_trials(deepcopy=False)[trial.number].system_attrs
    if attrs and exact:
        kept["sampler_attrs"] = attrs
    if not files:
        twin = {"twin": {"value": state.value}} if exact else {}
        raise InvalidProposal("the sampler's suggestion equals the current values", {**kept, **twin})
    return Candidate(state.commit, files, description, style.name, params, kept)


def narrowed(
    space: Mapping[str, Param],
    current: Mapping[str, Any],
    suggested: Mapping[str, Any],
    count: int | None,
    scale: float,
    rng: random.Random,
) -> dict[str, Any]:
    """The values a proposal writes: all of the suggestion, or (a narrowing style) the first
    `count` names whose value would change, each moved at most `scale` toward it."""
    names = sorted(space)
    limit = len(names) if count is None else min(count, len(names))
    changes: dict[str, Any] = {}
    for name in rng.sample(names, len(names)):
        value = toward(space[name], current[name], suggested[name], scale)
        if value != current[name]:
            changes[name] = value
        if len(changes) == limit:
            break
    return changes


def value_of(rec: ExperimentRecord) -> float | None:
    """What a record says the point scored: its value, or a duplicate's twin's."""
    if rec.value is not None and not rec.status.failed:
        return rec.value
    twin = rec.extra.get("twin")
    return twin.get("value") if isinstance(twin, dict) else None


def toward(param: Param, current: Any, suggestion: Any, scale: float) -> Any:
    """At most `scale` of the range (in unit space) from `current` toward `suggestion`."""
    if param.type == "categorical" or scale >= 1.0 or not param.contains(current):
        return suggestion
    here, there = param.to_unit(current), param.to_unit(suggestion)
    return param.from_unit(here + max(-scale, min(scale, there - here)))
