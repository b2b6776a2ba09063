"""An Optuna sampler proposes values for the declared space, through ask/tell.

The sampler works on a private in-memory study rebuilt from the records, so a
resumed run sees the same history; the run's persistent study is the
ledger's. A style narrows a proposal: `count` values change, each moved at
most `scale` of its range (in log space where the range is log) toward the
sampler's suggestion. With the `global` style the suggestion is taken whole.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from metaexp.candidate import Candidate
from metaexp.errors import SpecError
from metaexp.operators import Context, InvalidProposal, LineageState
from metaexp.operators.values import apply_values, locate_names, read_values
from metaexp.record.records import ExperimentRecord

if TYPE_CHECKING:
    import optuna

    from metaexp.spec.space import Param

SAMPLERS = ("tpe", "cmaes", "random", "gp")


def make_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if kind == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "gp":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise SpecError("operator.sampler gp needs torch: pip install torch==2.13.0") from None
        return optuna.samplers.GPSampler(seed=seed)
    raise SpecError(f"operator.sampler: unknown sampler {kind!r} (one of {', '.join(SAMPLERS)})")


class ParamsOperator:
    name = "params"

    def __init__(self, ctx: Context) -> None:
        import optuna

        assert ctx.space is not None, "validated: params needs a space"
        self.space = ctx.space
        self.styles = ctx.styles
        self.sampler_kind = ctx.spec.operator.sampler
        self.seed = ctx.spec.seed
        self.located = locate_names(self.space, ctx.files, "operator.space")
        self.dists = {name: p.distribution() for name, p in self.space.items()}
        make_sampler(self.sampler_kind, 0)  # fail early on a sampler that cannot run here
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(direction=ctx.spec.direction)
        self._pending: tuple[optuna.trial.Trial, bool] | None = None
        for rec in ctx.history:
            self._replay(rec)

    def propose(self, state: LineageState, n: int, rng: random.Random) -> Candidate:
        style = self.styles.pick(rng)
        self.study.sampler = make_sampler(self.sampler_kind, rng.randrange(2**31))
        trial = self.study.ask(self.dists)
        suggested = trial.params
        current = read_values(self.located, state.files)
        names = sorted(self.space)
        count = len(names) if style.count is None else min(style.count, len(names))
        order = rng.sample(names, len(names))
        changes: dict[str, Any] = {}
        for name in order:  # the first `count` names whose value would change
            value = self._toward(name, current[name], suggested[name], style.scale)
            if value != current[name]:
                changes[name] = value
            if len(changes) == count:
                break
        files, params, description = apply_values(self.located, state.files, changes)
        exact = bool(files) and params == suggested
        self._pending = (trial, exact)
        if not files:
            raise InvalidProposal("the sampler's suggestion equals the current values", {"asked": suggested})
        attrs = self.study.get_trials(deepcopy=False)[trial.number].system_attrs
        # what the private study must hold after this experiment, so a resumed run rebuilds it exactly
        extra = ({"sampler_attrs": attrs} if attrs else {}) if exact else {"asked": suggested}
        return Candidate(state.commit, files, description, style.name, params, extra)

    def observe(self, record: ExperimentRecord) -> None:
        if self._pending is None:  # the baseline: learn from it too
            self._replay(record)
            return
        trial, exact = self._pending
        self._pending = None
        value = record.value if not record.status.failed else None
        if exact:
            self.study.tell(trial, value, state=None if value is not None else _fail())
        else:  # the evaluated point is not the one asked: tell the truth as a new trial
            self.study.tell(trial, state=_fail())
            if record.status.harness_ran:
                self._add(record, system_attrs={})

    def params_of(self, files: Mapping[str, bytes]) -> dict[str, Any]:
        """The values this operator tunes, as they are in `files` (for the baseline's record)."""
        return read_values(self.located, files)

    def _toward(self, name: str, current: Any, suggestion: Any, scale: float) -> Any:
        return toward(self.space[name], current, suggestion, scale)

    def _replay(self, rec: ExperimentRecord) -> None:
        """Rebuild what observe() left in the private study for this record."""
        asked = rec.extra.get("asked")
        if asked is not None:  # the suggestion the evaluated point was derived from, told FAIL
            self._add(rec, system_attrs={}, params=asked, failed=True)
        exact = asked is None and rec.operator == self.name
        if rec.status.harness_ran or exact:
            self._add(rec, system_attrs=rec.extra.get("sampler_attrs", {}) if exact else {})

    def _add(
        self,
        rec: ExperimentRecord,
        system_attrs: dict[str, Any],
        params: dict[str, Any] | None = None,
        failed: bool = False,
    ) -> None:
        from optuna.trial import TrialState, create_trial

        chosen = rec.params if params is None else params
        values = {k: v for k, v in chosen.items() if k in self.space and self.space[k].contains(v)}
        if len(values) != len(self.space):
            return  # not a point of this space (e.g. the space changed since)
        ok = not failed and not rec.status.failed and rec.value is not None
        self.study.add_trial(
            create_trial(
                state=TrialState.COMPLETE if ok else TrialState.FAIL,
                value=rec.value if ok else None,
                params=values,
                distributions=self.dists,
                system_attrs=system_attrs,
            )
        )


def toward(param: Param, current: Any, suggestion: Any, scale: float) -> Any:
    """At most `scale` of the range (in unit space) from `current` toward `suggestion`."""
    if param.type == "categorical" or scale >= 1.0 or not param.contains(current):
        return suggestion
    here, there = param.to_unit(current), param.to_unit(suggestion)
    return param.from_unit(here + max(-scale, min(scale, there - here)))


def _fail() -> optuna.trial.TrialState:
    from optuna.trial import TrialState

    return TrialState.FAIL
