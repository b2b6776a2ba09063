"""Escaping-local-optima studies: the landscapes' known optima, and `metaexp study` through the CLI
with its table, JSON and plot checked against the runs' own ledgers."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, Project, git

from metaexp.decide.objectives import Objective
from metaexp.evaluate.metrics import parse_metrics
from metaexp.record.records import read_records
from metaexp.spec import load_spec
from metaexp.study import format_table, median_to_target, run_study, wilson

LANDSCAPES = ROOT / "harnesses" / "landscapes"
NK_N = 14


def landscape_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "landscapes"
    shutil.copytree(LANDSCAPES, dest, ignore=shutil.ignore_patterns("__pycache__", ".metaexp"))
    shutil.copytree(ROOT / "search_spaces", dest / "search_spaces")
    return dest


def score(root: Path, name: str, values: dict[str, object] | None = None) -> tuple[float, bool, float]:
    """Run the landscape's harness on its target (with `values` written in): (metric, whether it
    reaches the spec's budget.target, seconds)."""
    if values is not None:
        (root / f"{name}.py").write_text("".join(f"{k} = {v!r}\n" for k, v in values.items()))
    spec = load_spec(root / f"{name}.yaml")
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "evaluate.py", name], cwd=root, capture_output=True, text=True, check=True
    )
    seconds = time.monotonic() - t0
    metrics, problem = parse_metrics(proc.stdout, spec.metrics)
    assert not problem, proc.stdout
    value = metrics[spec.objective.primary]
    return value, Objective.of(spec).reached(value, spec.budget.target), seconds


def nk_optimum(root: Path) -> tuple[int, str]:
    out = subprocess.run(
        [sys.executable, "evaluate.py", "nk", "--optimum"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    value, genome = out.split(":")[1].split(" at ")
    return int(value), genome.strip()


def test_each_landscape_is_fast_and_only_its_known_optimum_reaches_the_target(tmp_path: Path) -> None:
    root = landscape_copy(tmp_path)
    for name in ("deceptive", "rastrigin", "nk"):
        value, reached, seconds = score(root, name)  # the shipped start: far from the optimum
        assert not reached and seconds < 1.0, (name, value, seconds)

    bits = {f"B{i:02d}": 1 for i in range(12)}
    assert score(root, "deceptive", bits)[:2] == (12, True)
    assert score(root, "deceptive", {**bits, "B05": 0})[:2] == (9, False)  # one block falls to 2 - 2
    assert score(root, "deceptive", {k: 0 for k in bits})[:2] == (8, False)  # the deceptive attractor

    origin = {"X0": 0.0, "X1": 0.0, "X2": 0.0}
    assert score(root, "rastrigin", origin)[:2] == (0.0, True)
    assert score(root, "rastrigin", {**origin, "X1": 1.0})[:2] == (1.0, False)  # the nearest local minimum
    assert score(root, "rastrigin", {**origin, "X2": 0.25})[1] is False

    optimum, genome = nk_optimum(root)  # all 2^14 genomes, enumerated
    assert optimum == load_spec(root / "nk.yaml").budget.target
    best = {f"G{i:02d}": int(bit) for i, bit in enumerate(genome)}
    assert score(root, "nk", best)[:2] == (optimum, True)
    for i in range(NK_N):  # every neighbour of the optimum is worse
        flipped = {**best, f"G{i:02d}": 1 - best[f"G{i:02d}"]}
        value, reached, _ = score(root, "nk", flipped)
        assert value < optimum and not reached


def test_the_default_spec_is_the_deceptive_one() -> None:
    default, deceptive = (load_spec(LANDSCAPES / f"{n}.yaml") for n in ("metaexp", "deceptive"))
    assert default == deceptive


@pytest.mark.parametrize(
    ("successes", "n", "interval"),
    [
        (81, 263, (0.2553, 0.3662)),
        (15, 148, (0.0624, 0.1605)),
        (0, 20, (0.0, 0.1611)),
        (1, 29, (0.0061, 0.1718)),
    ],
)
def test_wilson_matches_newcombes_published_score_intervals(
    successes: int, n: int, interval: tuple[float, float]
) -> None:
    """Newcombe (1998), Statistics in Medicine 17:857, Table II, method 3 (the score interval)."""
    assert wilson(successes, n) == pytest.approx(interval, abs=5e-5)
    low, high = wilson(successes, n, z=2.5758)  # 99%: wider on both sides (or pinned at 0)
    assert low <= interval[0] and high > interval[1]
    assert wilson(0, 0) == (0.0, 1.0)  # no finished runs: nothing is known


def test_wilson_interval_and_censored_median() -> None:
    assert wilson(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)
    assert wilson(10, 20) == pytest.approx((0.2993, 0.7007), abs=1e-4)
    assert wilson(20, 20) == pytest.approx((0.8389, 1.0), abs=1e-4)
    assert median_to_target([5, 9, None, 30]) == 9  # two of four had reached it by evaluation 9
    assert median_to_target([5, None, None, 30]) == 30
    assert median_to_target([5, None, None]) is None  # fewer than half reached it: beyond the budget


def init_landscapes(tmp_path: Path) -> Project:
    demo = Project(tmp_path / "demo")
    Project(tmp_path).cli("init", "--example", "landscapes", str(demo.root))
    return demo


def study(demo: Project, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return demo.cli("study", *args, check=check)


@pytest.mark.timeout(300)
def test_a_small_study_agrees_with_its_ledgers_and_resumes(tmp_path: Path, ray_session: None) -> None:
    demo = init_landscapes(tmp_path)
    spec = yaml.safe_load((demo.root / "deceptive.yaml").read_text())
    spec["budget"]["target"] = 8  # the trap's level: some short runs reach it, some do not
    (demo.root / "small.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    git(demo.root, "add", "small.yaml")
    git(demo.root, "commit", "-qm", "a reachable target")
    first = study(demo, "small.yaml", "--strategies", "hill_climb", "--seeds", "2", "--budget", "8")
    assert first.stderr.count("running (") == 2 and "0/2" in first.stdout  # 7 after 8 evaluations
    tags = ("deceptive-hill_climb-s0", "deceptive-hill_climb-s1")
    before = {tag: demo.records(tag) for tag in tags}
    progress = io.StringIO()  # in this process, on the session's Ray: pbt's population runs there
    result = run_study(demo.root / "small.yaml", ["hill_climb", "pbt"], 2, 12, demo.root / "out", progress)
    assert progress.getvalue().count("running (") == 4  # a larger budget: the runs resume; pbt's start
    assert "[2/4] deceptive-hill_climb-s1: reached the target at evaluation 10" in progress.getvalue()
    for tag in tags:  # resumed, not started again
        assert demo.records(tag)[: len(before[tag])] == before[tag] and len(demo.records(tag)) > 8

    report = json.loads((demo.root / "out" / "study.json").read_text())
    assert report["target"] == 8 and report["budget"] == 12 and report["seeds"] == [0, 1]
    assert (demo.root / "out" / "study.png").read_bytes()[:4] == b"\x89PNG"
    assert (demo.root / "out" / "study.txt").read_text() == format_table(result.summary) + "\n"
    rows = {row["strategy"]: row for row in report["strategies"]}
    assert list(rows) == ["hill_climb", "pbt"]
    for run in report["runs"]:
        records = demo.assert_consistent(run["tag"])
        evaluated = [r for r in records if r.status.harness_ran]
        hits = [i for i, r in enumerate(evaluated, 1) if r.value is not None and r.value >= 8]
        assert run["reached"] == bool(hits)
        assert run["evals_to_target"] == (hits[0] if hits else None)
        assert run["evaluations"] == len(evaluated)
        stop_at = hits[0] if hits else 12  # a population finishes the evaluations in flight
        assert (
            len(evaluated) == stop_at if run["strategy"] == "hill_climb" else stop_at <= len(evaluated) <= 12
        )
        assert run["best"] == max(r.value for r in evaluated if r.value is not None)
    by_tag = {run["tag"]: run for run in report["runs"]}
    assert not by_tag["deceptive-hill_climb-s0"]["reached"] and by_tag["deceptive-hill_climb-s1"]["reached"]
    assert by_tag["deceptive-hill_climb-s1"]["evals_to_target"] == 10
    for name, row in rows.items():
        mine = [run for run in report["runs"] if run["strategy"] == name]
        successes = sum(run["reached"] for run in mine)
        assert (row["runs"], row["successes"], row["unfinished"]) == (2, successes, 0)
        assert row["ci95"] == pytest.approx(wilson(successes, 2), abs=1e-4)
        line = next(line for line in format_table(report).splitlines() if line.startswith(name))
        assert f"{successes}/2" in line
    assert rows["hill_climb"]["median_evals_to_target"] == 10  # one of two reached it, at 10

    args = ("small.yaml", "--strategies", "hill_climb", "pbt", "--seeds", "2", "--budget", "12")
    again = study(demo, *args, "--out", "out")  # through the CLI: everything is recorded, nothing runs
    assert again.stderr.count("done earlier") == 4 and "running (" not in again.stderr
    assert json.loads((demo.root / "out" / "study.json").read_text()) == report
    assert format_table(report) in again.stdout
    for tag in by_tag:
        n = len(read_records(demo.root / ".metaexp" / tag / "experiments.jsonl"))
        assert n == len(demo.records(tag))


def test_bad_strategies_and_specs_are_clear_errors(tmp_path: Path) -> None:
    demo = init_landscapes(tmp_path)
    proc = study(demo, "deceptive.yaml", "--strategies", "hill_climb", "nope", "--seeds", "1", check=False)
    assert proc.returncode == 1
    assert "unknown strategy 'nope'" in proc.stderr and "hill_climb" in proc.stderr
    assert not (demo.root / ".metaexp").exists()  # refused before any run started
    spec = yaml.safe_load((demo.root / "deceptive.yaml").read_text())
    spec["budget"].pop("target")
    (demo.root / "open.yaml").write_text(yaml.safe_dump(spec))
    proc = study(demo, "open.yaml", "--strategies", "hill_climb", check=False)
    assert proc.returncode == 1 and "budget.target" in proc.stderr and "known optimum" in proc.stderr
    spec = yaml.safe_load((demo.root / "deceptive.yaml").read_text())
    spec["target"] = ["missing.py"]
    (demo.root / "missing.yaml").write_text(yaml.safe_dump(spec))
    proc = study(demo, "missing.yaml", "--strategies", "pbt", "--seeds", "1", check=False)
    assert proc.returncode == 1 and "'missing.py' matches no file" in proc.stderr
    assert "running" not in proc.stderr and not (demo.root / ".metaexp").exists()
