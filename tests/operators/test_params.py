"""The params operator's sampler learns: every proposal is the sampler's own trial, told back."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import LANDSCAPE, ROOT, Project
from helpers import landscape_spec, ratchet

from metaexp.operators import Context, LineageState, experiment_rng, make_operator
from metaexp.operators.styles import StyleMix
from metaexp.operators.target import read_value
from metaexp.record.records import ExperimentRecord, Status
from metaexp.spec.space import load_space

SPACE = load_space(ROOT / "search_spaces" / "landscape.yaml")
FILES = {"params.py": (LANDSCAPE / "params.py").read_bytes()}
OPTIMUM = {"X": 1.5, "Y": -0.5, "WIDTH": 12}
SAMPLERS = [
    "tpe",
    "cmaes",
    "lq-cmaes",
    "random",
    pytest.param("gp", marks=pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch")),
]


def _loss(files: dict[str, bytes]) -> float:
    return sum((float(read_value("params.py", files["params.py"], k)) - v) ** 2 for k, v in OPTIMUM.items())


def _operator(sampler: str, history: list[ExperimentRecord], style: str | None = None) -> object:
    operator = {"kind": "params", "space": "space.yaml", "sampler": sampler}
    spec = landscape_spec(operator if style is None else {**operator, "style": style})
    assert spec.operator.style == (style or "global")  # params' default: the sampler's own suggestion
    ctx = Context(spec, ROOT, StyleMix(spec.operator.style, ROOT), SPACE, history, FILES)
    return make_operator(ctx)


def _search(sampler: str, steps: int, style: str | None = None) -> tuple[object, list[ExperimentRecord]]:
    """A ratchet in memory: each proposal evaluated on the landscape's bowl and told back."""
    value = _loss(FILES)
    op = _operator(
        sampler, [ExperimentRecord(1, "c1", None, "", Status.KEEP, "baseline", {"loss": value}, value)], style
    )
    return op, ratchet(op, FILES, "loss", _loss, steps)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_proposal_is_the_samplers_own_trial_told_back(sampler: str) -> None:
    steps = 12 if sampler == "gp" else 30
    op, history = _search(sampler, steps)
    from optuna.trial import TrialState

    trials = op.study.get_trials(deepcopy=False)  # type: ignore[attr-defined]
    own = [t for t in trials if t.state is TrialState.COMPLETE]  # the baseline has no params: not a trial
    assert len(own) == steps
    assert not [t for t in trials if t.state is TrialState.FAIL]
    assert [t.params for t in own] == [r.extra["asked"] for r in history[1:]]  # what it asked, not a copy
    # ... and the point the harness evaluated: the suggestion is written exactly, not to 4 digits
    assert [r.params for r in history[1:]] == [r.extra["asked"] for r in history[1:]]
    told = [round(t.value, 9) for t in own]
    assert told == [round(r.value, 9) for r in history[1:]]  # each told the value its evaluation gave
    assert min(r.value for r in history) < history[0].value


def test_cmaes_advances_its_generations_toward_the_optimum() -> None:
    op, _ = _search("cmaes", 60)
    trials = op.study.get_trials(deepcopy=False)  # type: ignore[attr-defined]
    key = next(k for t in trials for k in t.system_attrs if k.endswith("generation"))
    generations: dict[int, list[float]] = {}
    for t in trials:
        if key in t.system_attrs and t.value is not None:
            generations.setdefault(t.system_attrs[key], []).append(t.value)
    assert max(generations) >= 3  # it completed generations: it learns from its own trials
    first, last = min(generations), max(g for g, vals in generations.items() if len(vals) > 2)
    assert sum(generations[last]) / len(generations[last]) < sum(generations[first]) / len(generations[first])


@pytest.mark.parametrize("sampler", ["tpe", "cmaes", "lq-cmaes", "random"])
def test_a_resumed_sampler_asks_what_an_uninterrupted_one_asks(sampler: str) -> None:
    """The uninterrupted run reuses its sampler, reseeded per proposal; a resumed one makes a fresh
    sampler: both must ask the same (the reseeding reaches every random stream)."""
    _, history = _search(sampler, 30)
    state = LineageState("cX", FILES, {"loss": 1.0}, 1.0)
    for cut in (12, 20, 29):
        rebuilt = _operator(sampler, history[:cut])
        again = rebuilt.propose(state, cut + 1, experiment_rng(0, cut + 1))  # type: ignore[attr-defined]
        assert again.extra["asked"] == history[cut].extra["asked"], cut


def test_cmaes_says_converged_only_once_a_generation_has_closed_in() -> None:
    """IPOP's trigger: a restart may leave CMA-ES once its newest full generation spans less than
    escape.converged of every range; on the bowl that takes CMA-ES over a hundred evaluations."""
    early, history = _search("cmaes", 20)
    assert not early.converged(0.01) and early.converged(1.0)  # type: ignore[attr-defined]
    late, history = _search("cmaes", 200)
    assert late.converged(0.01)  # type: ignore[attr-defined]
    assert min(r.value for r in history) < 1e-3  # it closed in on the optimum, not somewhere else
    tpe, _ = _search("tpe", 5)
    assert tpe.converged(0.01)  # type: ignore[attr-defined]  # other samplers: patience alone decides


def test_lq_cmaes_evaluates_a_few_members_a_generation_and_closes_in_before_cmaes() -> None:
    """lq-CMA-ES's model ranks each generation and only the best-ranked members are evaluated: on
    the bowl it runs more generations than its evaluations would fill at CMA-ES's population (7 in 3
    dimensions; lq-cmaes draws 14) and gets 100 times closer than CMA-ES in the same 60 evaluations
    (measured: 26 generations, 0.00036 against 0.74)."""
    lq, lq_history = _search("lq-cmaes", 60)
    _, cma_history = _search("cmaes", 60)
    trials = lq.study.get_trials(deepcopy=False)  # type: ignore[attr-defined]
    drawn = [t.system_attrs.get("lq-cmaes:generation") for t in trials[1:]]  # the first: random
    assert drawn.count(0) == 14  # the first generation, evaluated whole: too little to model yet
    generations = set(drawn)
    assert len(generations) > 60 / 7 * 1.5
    lq_best, cma_best = min(r.value for r in lq_history), min(r.value for r in cma_history)
    assert lq_best < cma_best / 100, (lq_best, cma_best)
    assert not lq.converged(0.01)  # type: ignore[attr-defined]
    late, _ = _search("lq-cmaes", 100)
    assert late.converged(0.01)  # type: ignore[attr-defined]  # its distribution closed in: IPOP may restart


@pytest.mark.parametrize("sampler", ["cmaes", "lq-cmaes"])
def test_a_categorical_beside_cma_es_is_learned_not_drawn_at_random(sampler: str, project: Project) -> None:
    """CMA-ES models the numbers only; a categorical beside it is TPE's, on its own, learned from
    every trial (Optuna's CmaEsSampler draws it uniformly whatever the trials say: about 4 of the
    last 20 proposals would take the best of five widths); validate says so."""
    bounds = "{type: float, low: -5.0, high: 5.0}"
    project.write(
        "mixed.yaml", f"X: {bounds}\nY: {bounds}\nWIDTH: {{type: categorical, choices: [4, 8, 12, 16, 20]}}\n"
    )
    operator = {"kind": "params", "space": "mixed.yaml", "sampler": sampler}
    said = project.cli("validate", str(project.spec(operator=operator))).stdout
    assert f"sampler {sampler}: CMA-ES models the numbers; WIDTH (categorical) each sampled by TPE" in said
    space = load_space(project.root / "mixed.yaml")
    spec = landscape_spec({**operator, "space": "space.yaml"})
    value = _loss(FILES)
    baseline = ExperimentRecord(1, "c1", None, "", Status.KEEP, "baseline", {"loss": value}, value)

    def operator_of(history: list[ExperimentRecord]) -> object:
        return make_operator(Context(spec, ROOT, StyleMix(spec.operator.style, ROOT), space, history, FILES))

    history = ratchet(operator_of([baseline]), FILES, "loss", _loss, 60)
    last = [r.params["WIDTH"] for r in history[-20:]]
    assert last.count(12) >= 10, last
    state = LineageState("cX", FILES, {"loss": 1.0}, 1.0)  # a resumed run asks what this one did:
    for cut in (5, 8, 20, 59):  # the reseeding reaches the TPE beside CMA-ES (random until 10 trials)
        again = operator_of(history[:cut]).propose(state, cut + 1, experiment_rng(0, cut + 1))  # type: ignore[attr-defined]
        assert again.extra["asked"] == history[cut].extra["asked"], cut


@pytest.mark.parametrize("sampler", ["cmaes", "tpe"])
def test_a_narrowing_style_tells_the_sampler_each_evaluated_point_with_its_value(sampler: str) -> None:
    """conservative: the written point is not the suggestion, so the suggestion is told FAIL and the
    point evaluated is told as a trial of its own, with the value it scored (once it was told FAIL
    too, and the sampler learned nothing from a narrowing style)."""
    op, history = _search(sampler, 15, style="conservative")
    from optuna.trial import TrialState

    trials = op.study.get_trials(deepcopy=False)  # type: ignore[attr-defined]
    told = [t for t in trials if t.state is TrialState.COMPLETE]
    assert len(told) == len(history) - 1  # each evaluated point (this baseline has no params)
    assert [t.params for t in told] == [r.params for r in history[1:]]
    assert [round(t.value, 9) for t in told] == [round(r.value, 9) for r in history[1:]]
