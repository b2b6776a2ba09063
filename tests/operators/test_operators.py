"""One contract over every registered operator, plugins included: changes only the targets, describes
itself, replays with the same seed and after a resume. The built-ins also stay in their space, move
only values and find improvements. The LLM operators talk to a rule-based model served on 127.0.0.1
(tests/helpers.py)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LANDSCAPE, ROOT
from fake_openai import FakeOpenAI
from helpers import landscape_model, landscape_spec

from metaexp.candidate import Candidate
from metaexp.operators import (
    BUILTINS,
    Context,
    LineageState,
    Operator,
    experiment_rng,
    make_operator,
    operators,
)
from metaexp.operators.styles import StyleMix
from metaexp.operators.target import read_value
from metaexp.record.records import ExperimentRecord, Status
from metaexp.spec import Spec
from metaexp.spec.space import load_space

OPTIMUM = {"X": 1.5, "Y": -0.5, "WIDTH": 12}
SPACE = load_space(ROOT / "search_spaces" / "landscape.yaml")
FILES = {"params.py": (LANDSCAPE / "params.py").read_bytes()}

LLM = {"model": "fake", "timeout_s": 5, "max_retries": 0, "notes_every": None}
MIX = {"conservative": 1, "bold": 1}
CASES = [
    ("llm", None, MIX, False),
    ("hybrid", "tpe", "conservative", True),  # llm: null, the offline memetic search
    ("hybrid-llm", "tpe", MIX, True),
    ("perturb", None, "conservative", False),
    ("perturb", None, "bold", True),
    ("perturb", "tpe", {"conservative": 1, "bold": 1}, True),
    ("params", "tpe", "conservative", True),
    ("params", "tpe", "global", True),
    ("params", "random", "bold", True),
    ("params", "cmaes", "global", True),
    pytest.param(
        "params",
        "gp",
        "global",
        True,
        marks=pytest.mark.skipif(
            importlib.util.find_spec("torch") is None, reason="gp needs the torch extra"
        ),
    ),
]
# an installed plugin's case: its kind on the landscape, with the space and the default style
PLUGIN_CASES = [
    pytest.param(kind, None, "conservative", True, id=f"plugin-{kind}")
    for kind in operators()
    if kind not in BUILTINS
]


@pytest.fixture(scope="module")
def model() -> Iterator[str]:
    """The base URL of a model that always answers with an edit of params.py."""
    with FakeOpenAI() as server:
        server.responder(landscape_model)
        yield server.base_url


def _spec(
    kind: str, sampler: str | None, style: object, with_space: bool, seed: int = 7, base_url: str = ""
) -> Spec:
    operator: dict[str, Any] = {"kind": kind, "style": style, "sampler": sampler or "tpe"}
    if kind == "llm":
        operator.update(LLM, base_url=base_url)
    if kind.startswith("hybrid"):
        llm = {**LLM, "base_url": base_url, "style": style} if kind == "hybrid-llm" else None
        operator.update(kind="hybrid", llm=llm, tune={"budget": 0}, schedule={"llm": 0.5, "params": 0.5})
    if with_space:
        operator["space"] = "space.yaml"
    return landscape_spec(operator, seed)


def _operator(spec: Spec, history: list[ExperimentRecord], files: dict[str, bytes]) -> Operator:
    space = SPACE if spec.operator.space else None
    return make_operator(Context(spec, ROOT, StyleMix(spec.operator.style, ROOT), space, history, files))


def _loss(files: dict[str, bytes]) -> float:
    return sum((float(read_value("params.py", files["params.py"], k)) - v) ** 2 for k, v in OPTIMUM.items())


def _simulate(
    spec: Spec, steps: int, history: list[ExperimentRecord] | None = None, state: LineageState | None = None
) -> tuple[list[Candidate], list[ExperimentRecord], list[LineageState]]:
    """A miniature loop: hill climbing on the landscape, in memory."""
    history = list(history or [])
    state = state or LineageState("c0", FILES, {"loss": _loss(FILES)}, _loss(FILES))
    op = _operator(spec, history, dict(state.files))
    if not history:
        history.append(
            ExperimentRecord(
                1,
                "c0",
                None,
                "",
                Status.KEEP,
                "baseline",
                {"loss": state.value},
                state.value,
                params=op.params_of(state.files),
            )
        )
        op.observe(history[-1])
    candidates, states = [], []
    for n in range(len(history) + 1, len(history) + 1 + steps):
        states.append(state)
        cand = op.propose(state, n, experiment_rng(spec.seed, n))
        candidates.append(cand)
        files = {**state.files, **cand.files}
        value = _loss(files)
        status = Status.KEEP if value < state.value else Status.DISCARD
        rec = ExperimentRecord(
            n,
            f"c{n}",
            state.commit,
            "",
            status,
            cand.description,
            {"loss": value},
            value,
            params=cand.params,
            style=cand.style,
            extra=cand.extra,
            generation=n - 2,  # a single lineage's proposal count
        )
        history.append(rec)
        op.observe(rec)
        if status is Status.KEEP:
            state = LineageState(f"c{n}", files, {"loss": value}, value)
    return candidates, history, states


def test_every_registered_operator_is_under_contract() -> None:
    """Each built-in has cases of its own; every other registered name (a plugin) the default one."""
    kinds = {(case.values if hasattr(case, "values") else case)[0] for case in CASES}
    assert {kind.removesuffix("-llm") for kind in kinds} == set(BUILTINS)
    assert set(BUILTINS) | {case.values[0] for case in PLUGIN_CASES} == set(operators())


@pytest.mark.parametrize(("kind", "sampler", "style", "with_space"), [*CASES, *PLUGIN_CASES])
def test_operator_contract(
    kind: str, sampler: str | None, style: object, with_space: bool, model: str
) -> None:
    spec = _spec(kind, sampler, style, with_space, base_url=model)
    steps = 12 if sampler == "gp" else 25  # GP costs about a second per proposal
    candidates, history, _ = _simulate(spec, steps)
    assert isinstance(_operator(spec, [], FILES), Operator)
    for cand in candidates:  # every operator: a change of the targets only, described
        assert cand.files and set(cand.files) <= set(FILES)
        assert cand.description and isinstance(cand.params, dict)
    again, _, _ = _simulate(spec, steps)
    assert [c.files for c in again] == [c.files for c in candidates]  # same seed, same run
    if kind.removesuffix("-llm") in BUILTINS:
        _builtin_contract(spec, candidates, history, with_space)


def _builtin_contract(
    spec: Spec, candidates: list[Candidate], history: list[ExperimentRecord], with_space: bool
) -> None:
    kind = spec.operator.kind
    for cand in candidates:
        if cand.extra.get("arm") not in ("llm",) and kind != "llm":  # values moved: it says from what to what
            assert "→" in cand.description, cand.description
        assert cand.style in ("conservative", "bold", "global")
        for name, value in cand.params.items():
            assert value == read_value("params.py", cand.files["params.py"], name)
            if with_space:
                assert SPACE[name].contains(value), (name, value)
        text = cand.files["params.py"].decode()
        assert text.count("\n") == FILES["params.py"].decode().count("\n")  # only values changed
    assert min(r.value for r in history) < history[0].value  # it finds improvements
    other, _, _ = _simulate(spec.model_copy(update={"seed": 8}), len(candidates))
    assert [c.files for c in other] != [c.files for c in candidates]  # another seed, another run


@pytest.mark.parametrize(("kind", "sampler", "style", "with_space"), [*CASES[:10], *PLUGIN_CASES])
def test_operator_resumes_from_history(
    kind: str, sampler: str | None, style: object, with_space: bool, model: str
) -> None:
    """Rebuilt from the first records (as after a kill), it proposes what it would have proposed."""
    spec = _spec(kind, sampler, style, with_space, base_url=model)
    candidates, history, states = _simulate(spec, 14)
    cut = 8  # records 1..8 survived; experiment 9 is proposed again
    resumed, _, _ = _simulate(spec, 5, history=history[:cut], state=states[cut - 1])
    assert [c.files for c in resumed] == [c.files for c in candidates[cut - 1 : cut + 4]]


def test_perturb_without_constants_is_a_clear_error(tmp_path: Path) -> None:
    from metaexp.errors import SpecError

    spec = _spec("perturb", None, "conservative", False)
    with pytest.raises(SpecError, match="no numeric UPPER_CASE module-level constants"):
        _operator(spec, [], {"params.py": b"x = 1\nname = 'a'\n"})
