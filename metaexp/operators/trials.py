"""The hybrid operator's memory of its numeric search, rebuilt from the records.

A *structure* is the code between two structural edits: every commit belongs to the structure of
the last LLM edit (or restart-free start) in its ancestry, so the numeric search learns only from
evaluations of the code it is tuning. Each evaluation of a structure is a point (its constants and
value): a plain experiment gives one, a tuned one each of its runs, and a numeric step written
whole is the sampler's own trial, with the system attrs its record keeps (so CMA-ES goes on with
its generations). From the points of the incumbent's structure come an Optuna study for the next
numeric step and, for the LLM's prompt, the best constants, PED-ANOVA importances, constants at a
bound and the tuning gains of recent edits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from metaexp.operators.params import value_of
from metaexp.operators.prompt import OptimiserState, TuningGain
from metaexp.record.records import ExperimentRecord
from metaexp.spec.space import Param

if TYPE_CHECKING:
    import optuna

    from metaexp.candidate import Knob

MIN_TRIALS = 10  # evaluations of a structure before its importances are shown
EDITS_SHOWN = 5  # structural edits in the prompt's tuning-gain table
AT_BOUND = 0.01  # within this share of the range from a bound counts as at it
Point = tuple[dict[str, Any], float | None, dict[str, Any] | None]


class Trials:
    def __init__(self, direction: str) -> None:
        self.direction = direction
        self.structure: dict[str, str] = {}  # commit -> the commit that began its structure
        # per structure, its evaluations in order: (params, value, the sampler's system attrs where the
        # point is a numeric step's suggestion written whole, else None)
        self.points: dict[str, list[Point]] = defaultdict(list)
        self.seen: dict[str, Param] = {}  # inferred bounds of unmarked constants, first seen first
        self.edits: list[TuningGain] = []

    def add(self, rec: ExperimentRecord) -> None:
        for name, dump in rec.extra.get("inferred", {}).items():
            self.seen.setdefault(name, Param.model_validate(dump))
        if rec.commit is None:  # nothing committed: a numeric step's repeat is still the sampler's trial
            if rec.parent is not None:
                self._add_points(self.structure_of(rec.parent), rec)
            return
        structural = rec.parent is None or rec.extra.get("arm") == "llm"
        sid = rec.commit if structural else self.structure_of(rec.parent or "")
        self.structure[rec.commit] = sid
        self._add_points(sid, rec)
        tune = rec.extra.get("tune")
        if rec.extra.get("arm") == "llm" and tune:
            description = rec.description.split("; tun")[0]  # without what tuning did
            self.edits.append(TuningGain(rec.n, str(rec.status), tune["untuned"], tune["tuned"], description))

    def _add_points(self, sid: str, rec: ExperimentRecord) -> None:
        asked = rec.extra.get("asked")
        if asked is not None and rec.extra.get("exact"):  # the sampler's own trial (a repeat: its twin's)
            self.points[sid].append((asked, value_of(rec), rec.extra.get("sampler_attrs", {})))
            return
        if not rec.status.harness_ran:
            return
        runs = [r for r in rec.extra.get("runs", []) if "params" in r]
        if runs:
            self.points[sid].extend((r["params"], r["value"], None) for r in runs)
        else:
            self.points[sid].append((rec.params, None if rec.status.failed else rec.value, None))

    def structure_of(self, commit: str) -> str:
        return self.structure.get(commit, commit)

    def study(self, commit: str, knobs: Mapping[str, Knob]) -> optuna.Study:
        """An in-memory study of the points of `commit`'s structure that lie in the knobs' space, the
        numeric arm's own trials with the sampler's attrs (CMA-ES reads its generations from them)."""
        import optuna
        from optuna.trial import TrialState, create_trial

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction=self.direction)
        dists = {name: knob.param.distribution() for name, knob in knobs.items()}
        for params, value, attrs in self.points.get(self.structure_of(commit), []):
            point = {n: params[n] for n, k in knobs.items() if n in params and k.param.contains(params[n])}
            if len(point) != len(knobs):
                continue  # a point of another space (a knob since added, or out of its bounds)
            state = TrialState.COMPLETE if value is not None else TrialState.FAIL
            study.add_trial(
                create_trial(state=state, value=value, params=point, distributions=dists, system_attrs=attrs)
            )
        return study

    def summary(
        self, commit: str, knobs: Mapping[str, Knob], current: Mapping[str, Any], sampler: str, budget: int
    ) -> OptimiserState:
        """What the prompt shows about the structure of `commit` (the incumbent)."""
        study = self.study(commit, knobs)
        done = [t for t in study.get_trials(deepcopy=False) if t.value is not None]
        best = study.best_trial if done else None
        return OptimiserState(
            sampler=sampler,
            budget=budget,
            trials=len(done),
            best=dict(best.params) if best else dict(current),
            best_value=best.value if best else None,
            importances=_importances(study) if len(done) >= MIN_TRIALS and len(knobs) > 1 else {},
            min_trials=MIN_TRIALS,
            at_bound=at_bound(knobs, current),
            edits=self.edits[-EDITS_SHOWN:],
        )


def at_bound(knobs: Mapping[str, Knob], values: Mapping[str, Any]) -> dict[str, str]:
    """{name: '= 2.0, its upper bound'} for numeric knobs whose value sits at a bound."""
    found: dict[str, str] = {}
    for name, knob in knobs.items():
        param, value = knob.param, values.get(name)
        if param.type == "categorical" or not isinstance(value, int | float) or not param.contains(value):
            continue
        unit = param.to_unit(value)
        if unit <= AT_BOUND or unit >= 1 - AT_BOUND:
            side = "lower" if unit <= AT_BOUND else "upper"
            found[name] = f"= {value:g}, its {side} bound ({param.low:g}..{param.high:g})"
    return found


def _importances(study: optuna.Study) -> dict[str, float]:
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    try:
        found = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
    except (ValueError, RuntimeError):  # e.g. every value equal: nothing to attribute
        return {}
    return {name: round(float(value), 3) for name, value in found.items()}
