"""The surrogate sampler (operator.sampler: surrogate) learns a discrete space's structure: through
the params operator on the real NK landscape target, and against random search on a trap."""

from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, Project
from helpers import ratchet

from metaexp.errors import SpecError
from metaexp.operators import Context, LineageState, experiment_rng, make_operator
from metaexp.operators.styles import StyleMix
from metaexp.operators.target import read_value
from metaexp.record.records import ExperimentRecord, Status
from metaexp.spec import Spec
from metaexp.spec.space import load_space

LANDSCAPES = ROOT / "harnesses" / "landscapes"
NK_SPACE = load_space(ROOT / "search_spaces" / "nk.yaml")
NK_FILES = {"nk.py": (LANDSCAPES / "nk.py").read_bytes()}


def _harness() -> object:
    """The landscapes' immutable evaluate.py, imported: its NK tables and optimum."""
    loaded = importlib.util.spec_from_file_location("landscapes_evaluate", LANDSCAPES / "evaluate.py")
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


EVALUATE = _harness()
TABLES = EVALUATE.nk_tables()  # type: ignore[attr-defined]


def _fitness(files: dict[str, bytes]) -> float:
    genome = [int(read_value("nk.py", files["nk.py"], f"G{i:02d}")) for i in range(EVALUATE.NK_N)]  # type: ignore[attr-defined]
    return float(EVALUATE.nk_fitness(genome, TABLES))  # type: ignore[attr-defined]


def _spec(sampler: str, kind: str = "params") -> Spec:
    return Spec.model_validate(
        {
            "tag": "t",
            "target": ["nk.py"],
            "harness": {"command": "python evaluate.py nk"},
            "metrics": {"fitness": {"direction": "maximize"}},
            "objective": {"primary": "fitness"},
            "operator": {"kind": kind, "space": "space.yaml", "sampler": sampler},
        }
    )


def _operator(sampler: str, history: list[ExperimentRecord], space: object = NK_SPACE) -> object:
    spec = _spec(sampler)
    ctx = Context(spec, ROOT, StyleMix(spec.operator.style, ROOT), space, history, NK_FILES)  # type: ignore[arg-type]
    return make_operator(ctx)


def _ratchet(sampler: str, steps: int, seed: int = 0) -> tuple[object, list[ExperimentRecord]]:
    """The ratchet in memory on the NK target, stopping at the global optimum."""
    value = float(_fitness(NK_FILES))
    op = _operator(
        sampler, [ExperimentRecord(1, "c1", None, "", Status.KEEP, "baseline", {"fitness": value}, value)]
    )
    optimum = EVALUATE.NK_OPTIMUM  # type: ignore[attr-defined]
    return op, ratchet(op, NK_FILES, "fitness", _fitness, steps, seed, maximize=True, target=optimum)


def _reached(history: list[ExperimentRecord]) -> int | None:
    return next((r.n for r in history if (r.value or 0) >= EVALUATE.NK_OPTIMUM), None)  # type: ignore[attr-defined]


def test_every_proposal_is_an_untried_point_told_back() -> None:
    op, history = _ratchet("surrogate", 40)
    from optuna.trial import TrialState

    trials = op.study.get_trials(deepcopy=False)  # type: ignore[attr-defined]
    own = [t for t in trials if t.state is TrialState.COMPLETE]
    assert len(own) == len(history) - 1 and not [t for t in trials if t.state is TrialState.FAIL]
    assert [t.params for t in own] == [r.params for r in history[1:]]  # its own suggestions, exactly
    points = [tuple(sorted(r.params.items())) for r in history[1:]]
    assert len(set(points)) == len(points)  # never a point twice: no evaluation spent on a duplicate
    assert all(v in (0, 1) for r in history[1:] for v in r.params.values())


def test_it_finds_the_nk_optimum_where_random_search_does_not() -> None:
    """The same ratchet and budget (120 evaluations of 16384 points), three seeds: the pairwise
    model reaches the global optimum on most, random search (which can only be lucky) on none."""
    budget, seeds = 120, (0, 1, 2)
    surrogate = [_reached(_ratchet("surrogate", budget, seed)[1]) for seed in seeds]
    random = [_reached(_ratchet("random", budget, seed)[1]) for seed in seeds]
    assert sum(r is not None for r in surrogate) >= 2, surrogate
    found, lucky = sum(r is not None for r in surrogate), sum(r is not None for r in random)
    assert lucky <= found - 2, (surrogate, random)
    assert statistics.median(r or budget + 2 for r in surrogate) < budget


def test_a_resumed_surrogate_asks_what_an_uninterrupted_one_asks() -> None:
    _, history = _ratchet("surrogate", 30, seed=5)
    state = LineageState("cX", NK_FILES, {"fitness": 1.0}, 1.0)
    for cut in (5, 15, min(25, len(history) - 1)):
        rebuilt = _operator("surrogate", history[:cut])
        again = rebuilt.propose(state, cut + 1, experiment_rng(5, cut + 1))  # type: ignore[attr-defined]
        assert again.extra["asked"] == history[cut].extra["asked"], cut


def test_a_space_it_cannot_model_is_one_line_naming_the_parameter() -> None:
    space = load_space(ROOT / "search_spaces" / "landscape.yaml")  # X, Y: continuous floats
    line = r"operator\.sampler surrogate: X is a continuous float; give it a step"
    with pytest.raises(SpecError, match=line):
        _operator("surrogate", [], space)


def test_the_hybrid_refuses_it_with_one_line() -> None:
    spec = _spec("surrogate", kind="hybrid").model_copy()
    ctx = Context(spec, ROOT, StyleMix(spec.operator.style, ROOT), None, [], NK_FILES)
    with pytest.raises(SpecError, match=r"operator\.sampler surrogate: only for params"):
        make_operator(ctx)


def test_a_run_from_the_cli_reaches_the_nk_optimum(tmp_path: Path) -> None:
    """The landscapes example with `sampler: surrogate`, as a user writes it: validate says what the
    model is, and `metaexp run` (real harness subprocesses, git, the ledger) stops at the optimum."""
    demo = Project(tmp_path / "demo")
    Project(tmp_path).cli("init", "--example", "landscapes", str(demo.root))
    spec = yaml.safe_load((demo.root / "nk.yaml").read_text())
    spec["operator"] = {"kind": "params", "space": spec["operator"]["space"], "sampler": "surrogate"}
    spec["budget"]["max_experiments"] = 150
    demo.write("nk.yaml", yaml.safe_dump(spec))
    said = demo.cli("validate", "nk.yaml").stdout
    assert "sampler surrogate: a pairwise model of 106 terms over 16384 points" in said
    demo.cli("run", "nk.yaml")
    records = demo.assert_consistent("nk")
    assert max(r.value or 0 for r in records) == EVALUATE.NK_OPTIMUM  # type: ignore[attr-defined]
    assert len(records) < 150  # it stopped at budget.target, not at the budget


def test_validate_names_the_float_it_cannot_model_in_one_line(tmp_path: Path) -> None:
    demo = Project(tmp_path / "demo")
    Project(tmp_path).cli("init", "--example", "landscape", str(demo.root))
    spec = yaml.safe_load((demo.root / "metaexp.yaml").read_text())
    spec["operator"] = {"kind": "params", "space": spec["operator"]["space"], "sampler": "surrogate"}
    demo.write("metaexp.yaml", yaml.safe_dump(spec))
    proc = demo.cli("validate", "metaexp.yaml", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "operator.sampler surrogate:" in proc.stderr and "continuous float; give it a step" in proc.stderr
