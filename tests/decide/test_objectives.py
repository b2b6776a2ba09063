"""Multi-metric objectives: a decision table per mode, the constraint parser, the Optuna views, validation."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from metaexp.decide.objectives import Decision, MultiObjective
from metaexp.errors import SpecError
from metaexp.spec.objective import Constraint, ObjectiveModeSpec

B, T, W, X = Decision.BETTER, Decision.TIE, Decision.WORSE, Decision.INFEASIBLE
NAN = math.nan
# acc is maximised, latency and memory minimised: every table mixes both directions.
DIRECTIONS = {"acc": "maximize", "latency": "minimize", "memory": "minimize"}


def _objective(directions: dict[str, str] | None = None, **spec: Any) -> MultiObjective:
    return MultiObjective(ObjectiveModeSpec.model_validate(spec), directions or DIRECTIONS)


def _m(acc: float = 0.9, latency: float = 100.0, memory: float = 400.0) -> dict[str, float]:
    return {"acc": acc, "latency": latency, "memory": memory}


# ---------------------------------------------------------------- decision tables, one per mode

SINGLE_MAX = {"primary": "acc", "min_delta": 0.01}
SINGLE_MIN = {"primary": "latency"}
WEIGHTED = {"mode": "weighted", "primary": "acc", "weights": {"acc": 100.0, "latency": 1.0}}
WEIGHTED_NORM = {**WEIGHTED, "weights": {"acc": 1.0, "latency": 1.0}, "normalize": True}
THRESHOLD = {
    "mode": "threshold",
    "primary": "acc",
    "threshold": {"latency": {"max": 200}, "memory": {"min": 1}},
}
LEXI = {
    "mode": "lexicographic",
    "primary": "acc",
    "lexicographic": {"order": ["acc", "latency"], "tolerance": {"acc": 0.005}},
}
PRIM_SEC = {
    "mode": "primary_secondary",
    "primary": "acc",
    "secondary": "latency",
    "primary_secondary": {"max_regression": {"latency": 2.0}},
}
PRIM_SEC_MAX = {
    "mode": "primary_secondary",
    "primary": "latency",
    "primary_secondary": {"max_regression": {"acc": 2.0}},
}
PARETO = {"mode": "pareto", "primary": "acc"}
CONSTRAINED = {"primary": "acc", "constraints": ["memory < 512", "0.5 <= acc"]}

TABLE = [
    # single, maximised with min_delta 0.01
    ("single", SINGLE_MAX, _m(acc=0.92), _m(acc=0.90), B),
    ("single", SINGLE_MAX, _m(acc=0.905), _m(acc=0.90), T),
    ("single", SINGLE_MAX, _m(acc=0.895), _m(acc=0.90), T),
    ("single", SINGLE_MAX, _m(acc=0.88), _m(acc=0.90), W),
    ("single", SINGLE_MAX, _m(acc=0.5), None, B),
    ("single", SINGLE_MAX, _m(acc=NAN), _m(), X),
    ("single", SINGLE_MAX, {"latency": 1.0}, _m(), X),
    ("single", SINGLE_MAX, _m(), {"latency": 1.0}, B),  # the incumbent lacks the primary
    # single, minimised: lower is better
    ("single-min", SINGLE_MIN, _m(latency=90), _m(latency=100), B),
    ("single-min", SINGLE_MIN, _m(latency=100), _m(latency=100), T),
    ("single-min", SINGLE_MIN, _m(latency=110), _m(latency=100), W),
    ("single-min", SINGLE_MIN, _m(latency=math.inf), _m(latency=100), X),
    # weighted: 100*acc - latency
    ("weighted", WEIGHTED, _m(acc=0.95, latency=102), _m(acc=0.90, latency=100), B),  # +5 -2
    ("weighted", WEIGHTED, _m(acc=0.95, latency=108), _m(acc=0.90, latency=100), W),  # +5 -8
    ("weighted", WEIGHTED, _m(acc=0.75, latency=125), _m(acc=0.50, latency=100), T),  # +25 -25
    ("weighted", WEIGHTED, _m(acc=0.90, latency=90), _m(acc=0.90, latency=100), B),
    ("weighted", WEIGHTED, {"acc": 0.9}, _m(), X),
    ("weighted", WEIGHTED, {"acc": 0.9, "latency": 1.0}, _m(), B),  # memory is not weighted
    # weighted, normalised: +10% acc against +5% latency
    ("weighted-norm", WEIGHTED_NORM, _m(acc=0.99, latency=105), _m(acc=0.90, latency=100), B),
    ("weighted-norm", WEIGHTED_NORM, _m(acc=0.99, latency=120), _m(acc=0.90, latency=100), W),
    ("weighted-norm", WEIGHTED_NORM, _m(acc=1.0, latency=200), _m(acc=0.5, latency=100), T),  # +100% -100%
    (  # unequal weights: each change is relative to the incumbent's value (+100% acc, 2 * -45% latency)
        "weighted-norm",
        {**WEIGHTED_NORM, "weights": {"acc": 1.0, "latency": 2.0}},
        _m(acc=1.0, latency=145),
        _m(acc=0.5, latency=100),
        B,
    ),
    # threshold: latency <= 200 and memory >= 1 gate, then acc
    ("threshold", THRESHOLD, _m(acc=0.99, latency=250), _m(), X),
    ("threshold", THRESHOLD, _m(acc=0.99, latency=200), _m(), B),  # bounds are inclusive
    ("threshold", THRESHOLD, _m(acc=0.99, memory=0), _m(), X),
    ("threshold", THRESHOLD, _m(acc=0.80, latency=150), _m(acc=0.9, latency=100), W),
    ("threshold", THRESHOLD, _m(acc=0.90, latency=150), _m(acc=0.9, latency=100), T),
    ("threshold", THRESHOLD, _m(acc=0.99, latency=250), None, X),  # a gate applies to the first, too
    ("threshold", THRESHOLD, {"acc": 0.99, "latency": 10}, _m(), X),  # memory missing
    # lexicographic: acc (tolerance 0.005), then latency
    ("lexicographic", LEXI, _m(acc=0.92, latency=500), _m(acc=0.90), B),
    ("lexicographic", LEXI, _m(acc=0.88, latency=1), _m(acc=0.90), W),
    ("lexicographic", LEXI, _m(acc=0.903, latency=90), _m(acc=0.90), B),  # equal acc, faster
    ("lexicographic", LEXI, _m(acc=0.903, latency=110), _m(acc=0.90), W),  # equal acc, slower
    ("lexicographic", LEXI, _m(acc=0.897, latency=100, memory=1e9), _m(acc=0.90), T),  # memory not ordered
    ("lexicographic", LEXI, _m(acc=0.9, latency=NAN), _m(), X),
    # primary_secondary: acc must improve, latency may not pass 2x the incumbent's
    ("primary_secondary", PRIM_SEC, _m(acc=0.95, latency=199), _m(latency=100), B),
    ("primary_secondary", PRIM_SEC, _m(acc=0.95, latency=200), _m(latency=100), B),
    ("primary_secondary", PRIM_SEC, _m(acc=0.95, latency=201), _m(latency=100), W),
    ("primary_secondary", PRIM_SEC, _m(acc=0.85, latency=50), _m(latency=100), W),
    ("primary_secondary", PRIM_SEC, _m(acc=0.90, latency=150), _m(latency=100), T),
    ("primary_secondary", PRIM_SEC, _m(acc=0.90, latency=250), _m(latency=100), W),
    (
        "primary_secondary",
        PRIM_SEC,
        _m(acc=0.95, latency=1),
        _m(latency=-5),
        W,
    ),  # ratio on <= 0: no regression
    ("primary_secondary", PRIM_SEC, {"acc": 0.95}, _m(), X),
    # primary_secondary, the other way round: latency must improve, acc may not fall below half
    ("primary_secondary-max", PRIM_SEC_MAX, _m(latency=90, acc=0.46), _m(latency=100, acc=0.9), B),
    ("primary_secondary-max", PRIM_SEC_MAX, _m(latency=90, acc=0.44), _m(latency=100, acc=0.9), W),
    # pareto over acc, latency, memory
    ("pareto", PARETO, _m(acc=0.95), _m(), B),
    ("pareto", PARETO, _m(acc=0.95, latency=90, memory=300), _m(), B),
    ("pareto", PARETO, _m(latency=110), _m(), W),
    ("pareto", PARETO, _m(), _m(), T),
    ("pareto", PARETO, _m(acc=0.95, latency=110), _m(), T),  # a trade-off: mutually non-dominated
    ("pareto", PARETO, {"acc": 0.95, "latency": 90}, _m(), X),
    ("pareto", PARETO, _m(memory=NAN), None, X),
    ("pareto", PARETO, _m(), None, B),
    # constraints come first, in every mode
    ("constraints", CONSTRAINED, _m(acc=0.99, memory=600), _m(), X),
    ("constraints", CONSTRAINED, _m(acc=0.99, memory=512), _m(), X),  # strict <
    ("constraints", CONSTRAINED, _m(acc=0.99, memory=511), _m(), B),
    ("constraints", CONSTRAINED, _m(acc=0.4, memory=100), None, X),
    ("constraints", CONSTRAINED, {"acc": 0.99}, _m(), X),  # memory missing: cannot be checked
    ("constraints", {**PARETO, "constraints": ["latency <= 100"]}, _m(acc=0.95, latency=101), _m(), X),
    ("constraints", {**WEIGHTED, "constraints": ["memory != 400"]}, _m(acc=1.0), _m(), X),
]


@pytest.mark.parametrize(
    ("mode", "spec", "candidate", "incumbent", "expected"), TABLE, ids=[r[0] for r in TABLE]
)
def test_decision_table(
    mode: str,
    spec: dict[str, Any],
    candidate: dict[str, float],
    incumbent: dict[str, float] | None,
    expected: Decision,
) -> None:
    decision, reason = _objective(**spec).decide(candidate, incumbent)
    assert decision is expected, reason
    assert reason


@pytest.mark.parametrize(
    ("spec", "candidate", "incumbent", "in_reason"),
    [
        (SINGLE_MAX, {"latency": 1.0}, _m(), "has no metric 'acc'"),
        (SINGLE_MAX, _m(acc=NAN), _m(), "acc=nan"),
        (CONSTRAINED, _m(memory=600), _m(), "violates memory < 512 (memory=600)"),
        (THRESHOLD, _m(latency=250), _m(), "outside threshold latency <= 200"),
        (PRIM_SEC, _m(acc=0.95, latency=201), _m(latency=100), "latency 201 regresses past 2x"),
        (
            PARETO,
            _m(acc=0.95, latency=110),
            _m(),
            "trade-off (non-dominated): better on acc, worse on latency",
        ),
        (PARETO, _m(), None, "first measurement"),
    ],
)
def test_reasons_name_the_metric(
    spec: dict[str, Any], candidate: dict[str, float], incumbent: dict[str, float] | None, in_reason: str
) -> None:
    assert in_reason in _objective(**spec).decide(candidate, incumbent)[1]


@pytest.mark.parametrize(("ties", "kept"), [("discard", [B]), ("keep", [B, T])])
def test_keeps_follows_ties(ties: str, kept: list[Decision]) -> None:
    objective = _objective(primary="acc", ties=ties)
    assert [d for d in Decision if objective.keeps(d)] == kept


# ---------------------------------------------------------------- the constraint parser


@pytest.mark.parametrize(
    ("text", "metric", "op", "bound"),
    [
        ("memory_mb < 512", "memory_mb", "<", 512.0),
        ("latency_ms<=100", "latency_ms", "<=", 100.0),
        ("0.5 <= acc", "acc", ">=", 0.5),
        ("1e3 > p99.latency", "p99.latency", "<", 1000.0),
        ("  loss-val >= -2.5e-1 ", "loss-val", ">=", -0.25),
        ("steps == 10", "steps", "==", 10.0),
        ("3 != mode", "mode", "!=", 3.0),
        ("x > .5", "x", ">", 0.5),
    ],
)
def test_constraint_parses(text: str, metric: str, op: str, bound: float) -> None:
    assert Constraint.parse(text) == Constraint(metric, op, bound)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("__import__('os').system('x') < 1", "\"__import__('os').system('x')\" is neither a metric name"),
        ("memory < 512MB", "'512MB' is neither a metric name nor a number"),
        ("memory = 512", "no comparison operator"),
        ("memory", "no comparison operator"),
        ("", "no comparison operator"),
        ("0 < memory < 512", "more than one comparison"),
        ("memory < latency", "compares two metrics"),
        ("1 < 2", "names no metric"),
        ("memory < 1 + 2", "'1 + 2' is neither"),
        ("memory => 5", "'memory =' is neither"),
        ("memory < inf", "compares two metrics"),  # inf is a name here, not a number
        ("memory.__class__ < 1; x", "'1; x' is neither"),
    ],
)
def test_bad_constraints_name_the_expression(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        Constraint.parse(text)
    message = str(info.value)
    assert f"constraint {text!r}" in message and problem in message and "expected METRIC OP NUMBER" in message


@pytest.mark.parametrize(
    ("text", "value", "satisfied", "violation"),
    [
        ("m < 10", 4.0, True, -6.0),
        ("m < 10", 10.0, False, None),  # just violated: > 0, however small
        ("m <= 10", 10.0, True, 0.0),
        ("m <= 10", 12.0, False, 2.0),
        ("5 <= m", 4.0, False, 1.0),
        ("m > 5", 8.0, True, -3.0),
        ("m == 3", 3.0, True, 0.0),
        ("m == 3", 3.5, False, 0.5),
        ("m != 3", 3.0, False, None),
        ("m != 3", 1.0, True, -2.0),
        ("m < 10", NAN, False, math.inf),
    ],
)
def test_constraint_satisfied_matches_violation(
    text: str, value: float, satisfied: bool, violation: float | None
) -> None:
    c = Constraint.parse(text)
    assert c.satisfied({"m": value}) is satisfied
    v = c.violation({"m": value})
    assert (v <= 0) is satisfied
    if violation is not None:
        assert v == violation
    assert not c.satisfied({}) and c.violation({}) == math.inf


def test_constraint_str_is_canonical() -> None:
    assert str(Constraint.parse("0.5 <= acc")) == "acc >= 0.5"


# ---------------------------------------------------------------- views for Optuna studies


@pytest.mark.parametrize(
    ("spec", "metrics", "scalar", "values", "directions"),
    [
        (SINGLE_MAX, _m(acc=0.9), 0.9, [0.9], ["maximize"]),
        (SINGLE_MIN, _m(latency=80), 80.0, [80.0], ["minimize"]),
        (THRESHOLD, _m(acc=0.7), 0.7, [0.7], ["maximize"]),
        (LEXI, _m(acc=0.8), 0.8, [0.8], ["maximize"]),
        (PRIM_SEC, _m(acc=0.8), 0.8, [0.8], ["maximize"]),
        (WEIGHTED, _m(acc=0.9, latency=50), 40.0, [40.0], ["maximize"]),
        (WEIGHTED_NORM, _m(acc=0.9, latency=50), -49.1, [-49.1], ["maximize"]),  # never normalised
        (PARETO, _m(0.9, 50, 300), None, [0.9, 50.0, 300.0], ["maximize", "minimize", "minimize"]),
        (SINGLE_MAX, {"latency": 1.0}, None, None, ["maximize"]),
        (WEIGHTED, {"acc": NAN, "latency": 1.0}, None, None, ["maximize"]),
        (PARETO, {"acc": 0.9, "latency": 1.0}, None, None, ["maximize", "minimize", "minimize"]),
    ],
)
def test_optuna_views(
    spec: dict[str, Any],
    metrics: dict[str, float],
    scalar: float | None,
    values: list[float] | None,
    directions: list[str],
) -> None:
    objective = _objective(**spec)
    assert objective.scalar(metrics) == pytest.approx(scalar)
    assert objective.values(metrics) == pytest.approx(values)
    assert objective.directions() == directions


def test_constraint_values_list_constraints_then_threshold_bounds() -> None:
    objective = _objective(
        mode="threshold",
        primary="acc",
        threshold={"latency": {"min": 10, "max": 200}},
        constraints=["memory < 512", "0.5 <= acc"],
    )
    assert objective.constraint_values(_m(acc=0.9, latency=250, memory=500)) == pytest.approx(
        [-12.0, -0.4, -240.0, 50.0]
    )
    assert objective.constraint_values({}) == [math.inf] * 4
    assert _objective(primary="acc").constraint_values(_m()) == []


# ---------------------------------------------------------------- validation names the key


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"primary": "acc", "weight": {"acc": 1}}, "weight"),
        ({"primary": "acc", "mode": "best"}, "mode"),
        ({"mode": "weighted"}, "primary"),
        ({**WEIGHTED, "weights": {"acc": 1.0, "latency": 0.0}}, "weights.latency: must be positive"),
        ({**WEIGHTED, "weights": {"acc": -1.0}}, "weights.acc: must be positive"),
        ({"mode": "weighted", "primary": "acc"}, "mode 'weighted' needs `weights`"),
        ({"mode": "threshold", "primary": "acc"}, "mode 'threshold' needs `threshold`"),
        ({"mode": "lexicographic", "primary": "acc"}, "mode 'lexicographic' needs `lexicographic`"),
        (
            {"mode": "primary_secondary", "primary": "acc"},
            "mode 'primary_secondary' needs `primary_secondary`",
        ),
        ({"primary": "acc", "weights": {"acc": 1.0}}, "`weights` is set but mode is 'single'"),
        ({**THRESHOLD, "threshold": {"latency": {}}}, "a bound needs min, max or both"),
        ({**THRESHOLD, "threshold": {"latency": {"min": 5, "max": 1}}}, "min 5 is above max 1"),
        ({**THRESHOLD, "threshold": {"latency": {"below": 5}}}, "below"),
        ({**LEXI, "lexicographic": {"order": ["latency", "acc"]}}, "must start with the primary 'acc'"),
        ({**LEXI, "lexicographic": {"order": ["acc"], "tolerance": {"latency": 1}}}, "tolerance.latency"),
        (
            {**LEXI, "lexicographic": {"order": ["acc"], "tolerance": {"acc": -1}}},
            "tolerance.acc: must be >= 0",
        ),
        ({**LEXI, "lexicographic": {"order": []}}, "order"),
        ({**LEXI, "min_delta": 0.1}, "min_delta is unused in mode 'lexicographic'"),
        ({**PRIM_SEC, "primary_secondary": {"max_regression": {"latency": 0.5}}}, "max_regression.latency"),
        ({**PRIM_SEC, "primary_secondary": {"max_regression": {"acc": 2.0}}}, "max_regression.acc"),
        ({**PRIM_SEC, "secondary": "memory"}, "secondary 'memory' has no"),
        ({"primary": "acc", "secondary": "acc"}, "secondary 'acc' is the primary"),
        ({"primary": "acc", "normalize": True}, "`normalize` is for mode weighted"),
        ({"primary": "acc", "constraints": ["acc > 0", "m <"]}, "constraints[1]: constraint 'm <'"),
    ],
)
def test_spec_errors_name_the_key(spec: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        ObjectiveModeSpec.model_validate(spec)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"primary": "accuracy"},
            "objective.primary: 'accuracy' is not a metric (metrics: acc, latency, memory)",
        ),
        ({"primary": "acc", "secondary": "lat"}, "objective.secondary: 'lat'"),
        ({**WEIGHTED, "weights": {"acc": 1.0, "speed": 1.0}}, "objective.weights.speed: 'speed'"),
        ({**THRESHOLD, "threshold": {"lat": {"max": 1}}}, "objective.threshold.lat: 'lat'"),
        ({**LEXI, "lexicographic": {"order": ["acc", "size"]}}, "objective.lexicographic.order: 'size'"),
        (
            {**PRIM_SEC, "secondary": None, "primary_secondary": {"max_regression": {"p99": 2}}},
            "objective.primary_secondary.max_regression.p99: 'p99'",
        ),
        ({**SINGLE_MAX, "constraints": ["acc > 0", "gpu_mb < 9"]}, "objective.constraints[1]: 'gpu_mb'"),
    ],
)
def test_unknown_metrics_are_named(spec: dict[str, Any], expected: str) -> None:
    parsed = ObjectiveModeSpec.model_validate(spec)
    errors = parsed.validate_against(DIRECTIONS)
    assert len(errors) == 1 and expected in errors[0]
    with pytest.raises(SpecError, match="is not a metric"):
        MultiObjective(parsed, DIRECTIONS)


def test_valid_specs_have_no_errors() -> None:
    for spec in (SINGLE_MAX, WEIGHTED, WEIGHTED_NORM, THRESHOLD, LEXI, PRIM_SEC, PARETO, CONSTRAINED):
        assert ObjectiveModeSpec.model_validate(spec).validate_against(DIRECTIONS) == []


def test_pareto_needs_two_metrics_and_directions_must_be_known() -> None:
    errors = ObjectiveModeSpec.model_validate(PARETO).validate_against(["acc"])
    assert errors == ["objective.mode: pareto needs at least two metrics (metrics: acc)"]
    with pytest.raises(SpecError, match=r"metrics\.acc\.direction: 'up'"):
        _objective({"acc": "up"}, primary="acc")


def test_parser_calls_nothing_dynamic() -> None:
    import ast
    from pathlib import Path

    import metaexp.spec.objective

    tree = ast.parse(Path(metaexp.spec.objective.__file__).read_text())
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not names & {"eval", "exec", "compile", "__import__"}
