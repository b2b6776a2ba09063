"""The hybrid operator: LLM edits tuned by Optuna before the decision, and the optimiser's state in
the prompt; through the whole loop with real git, harness subprocesses and the openai client."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Project, git
from fake_openai import FakeOpenAI

from metaexp.errors import SpecError
from metaexp.operators import InvalidProposal
from metaexp.operators.knobs import find_knobs
from metaexp.operators.lq_cmaes import PREFIX
from metaexp.operators.target import read_value
from metaexp.record.records import ExperimentRecord, Status
from metaexp.run import run
from metaexp.run.plan import make_plan
from metaexp.spec import load_spec

BINPACK = ROOT / "harnesses" / "binpack"


def diff(old: str, new: str, hypothesis: str = "an edit") -> str:
    return f"Hypothesis: {hypothesis}\nparams.py\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n"


def widen(request: dict[str, Any]) -> str:
    """A scripted model: one more WIDTH, whatever the file says (always applies; asked again after a
    repeat, it answers the same)."""
    prompt = next(m["content"] for m in request["messages"] if m["role"] == "user")
    line = re.search(r"^WIDTH = (\d+)(.*)$", prompt, re.M)
    assert line is not None
    return diff(line.group(0), f"WIDTH = {int(line.group(1)) + 1}{line.group(2)}", "one more WIDTH")


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def hybrid(server: FakeOpenAI | None, **extra: Any) -> dict[str, Any]:
    llm = None
    if server is not None:
        llm = {"model": "fake", "base_url": server.base_url, "timeout_s": 2, "max_retries": 0}
        llm["notes_every"] = None
    return {"kind": "hybrid", "llm": llm, "space": None, "tune": {"sampler": "cmaes", "budget": 6}, **extra}


def evaluations(records: list[ExperimentRecord]) -> int:
    return sum(max(1, len(r.extra.get("runs", []))) for r in records if r.status.harness_ran)


def test_tuning_starts_from_the_llms_values_and_commits_the_tuned_ones(
    project: Project, server: FakeOpenAI
) -> None:
    server.reply(
        diff(
            "X = 3.0  # first coordinate (optimum 1.5)",
            "X = 2.0  # tune: 0..4",
            "X nearer the middle, and tunable",
        )
    )
    op = hybrid(server, schedule={"llm": 1.0, "params": 0.0})
    result = project.run(operator=op, budget={"max_experiments": 2})
    assert result.stop_reason == "max_experiments=2 reached"
    records = project.assert_consistent()
    rec = records[1]
    runs = rec.extra["runs"]
    assert runs[0]["params"] == {"X": 2.0, "Y": -2.0, "WIDTH": 7}  # the LLM's values, as written, first
    assert len(runs) == 6 and len(server.requests) == 1
    assert rec.extra["tune"]["knobs"]["X"] == {"type": "float", "low": 0.0, "high": 4.0, "log": False}
    assert all(0.0 <= r["params"]["X"] <= 4.0 for r in runs)  # the marker's range
    best = min(runs, key=lambda r: r["value"])
    assert rec.value == best["value"] < runs[0]["value"] and rec.params == best["params"]
    assert rec.status is Status.KEEP and "; tuned " in rec.description
    committed = git(project.root, "show", f"{rec.commit}:params.py").encode()
    assert {k: read_value("params.py", committed, k) for k in ("X", "Y", "WIDTH")} == best["params"]
    assert b"# tune: 0..4" in committed
    logs = project.root / ".metaexp" / "landscape" / "logs"
    assert all((logs / name).exists() for name in ("2.log", "2.1.log", "2.5.log"))


def test_tune_markers_are_honoured_and_malformed_ones_are_invalid(
    project: Project, server: FakeOpenAI
) -> None:
    old = "X = 3.0  # first coordinate (optimum 1.5)"
    server.reply(diff(old, "X = 2.0  # tune: 0-4"))
    server.reply(diff(old, "X = 9.0  # tune: 0..4"))
    server.reply(diff(old, "X = 2.0\nif X:  # tune: 0..4\n    pass"))
    server.reply(diff(old, "X = 1.0  # tune: 0.1..10 log"))
    op = hybrid(server, schedule={"llm": 1.0, "params": 0.0}, tune={"budget": 2})
    project.run(operator=op, budget={"max_experiments": 2})
    records = project.assert_consistent()
    assert [r.status for r in records] == [
        Status.KEEP,
        Status.INVALID,
        Status.INVALID,
        Status.INVALID,
        Status.KEEP,
    ]
    assert "params.py line 4: malformed marker `# tune: 0-4`" in records[1].reason
    assert "X = 9.0 lies outside its marker's range 0..4" in records[2].reason
    assert "must end a module-level `NAME = number` line" in records[3].reason
    assert records[1].usage["calls"] == 1  # the LLM call that produced it is still counted
    knob = records[4].extra["tune"]["knobs"]["X"]
    assert knob == {"type": "float", "low": 0.1, "high": 10.0, "log": True}


def test_find_knobs_reads_the_space_constants_and_markers() -> None:
    text = b"A = 3\nB = 0.5  # tune: 0..1\nc = 2  # tune: 1..8\nD = -2.0\nE = 'x'\n"
    knobs = find_knobs({"m.py": text}, None)
    assert {n: (k.source, k.param.type, k.param.low, k.param.high) for n, k in knobs.items()} == {
        "A": ("constant", "int", 1, 12),
        "B": ("marker", "float", 0.0, 1.0),
        "c": ("marker", "int", 1, 8),
        "D": ("constant", "float", -20.0, 20.0),
    }
    with pytest.raises(InvalidProposal, match="fewer than two ints"):
        find_knobs({"m.py": b"N = 3  # tune: 2.5..2.9\n"}, None)


def test_prompt_shows_best_constants_importances_bounds_and_tuning_gains(
    project: Project, server: FakeOpenAI
) -> None:
    server.responder(widen)
    schedule = {"llm": 0.3, "params": 0.7, "counts": "proposals"}  # enough edits to see the prompts
    op = hybrid(server, schedule=schedule, tune={"budget": 8}, style="bold")
    project.run(operator=op, budget={"max_experiments": None, "max_evaluations": 48})
    records = project.assert_consistent()
    asked = [r["messages"][-1]["content"] for r in server.requests]
    prompts = [p for p in asked if not p.startswith("That edit could not be used")]
    retries = [p for p in asked if p.startswith("That edit could not be used")]
    assert all("it is the same change as experiment #" in p for p in retries)  # repeats, told so
    llm_records = [r for r in records if r.extra.get("arm") == "llm"]
    assert len(prompts) == len(llm_records) >= 2
    assert "Parameter importances: too few trials yet" in prompts[0]
    shown = [p for p in prompts if "Parameter importances (PED-ANOVA over" in p]
    assert shown, "no prompt showed importances"
    late = shown[-1]
    line = re.search(r"Parameter importances \(PED-ANOVA over (\d+) trials\): (.*)", late)
    assert line is not None and int(line.group(1)) >= 10
    assert {"X", "Y", "WIDTH"} == {part.split()[0] for part in line.group(2).split(", ")}
    # the best constants shown are the incumbent's, which the proposal's record started from
    k = prompts.index(late)
    parent = next(r for r in records if r.commit == llm_records[k].parent and r.status.accepted)
    best = re.search(
        r"Best constants so far \(\d+ evaluations of the current structure, loss (\S+)\): (.*)", late
    )
    assert best is not None and float(best.group(1)) == pytest.approx(parent.value, rel=1e-5)
    assert f"WIDTH = {parent.params['WIDTH']}" in best.group(2)
    first, tune = llm_records[0], llm_records[0].extra["tune"]
    gain_row = f"| {first.n} | {first.status} | {tune['untuned']:.6g} | {tune['tuned']:.6g} | one more WIDTH"
    assert gain_row in prompts[1]  # the tuning gain of the last structural edits
    assert "`# tune: LOW..HIGH`" in prompts[0]


def test_evaluations_are_counted_against_max_evaluations(project: Project) -> None:
    op = hybrid(None, schedule={"llm": 0.5, "params": 0.5}, tune={"budget": 5})
    result = project.run(operator=op, budget={"max_experiments": None, "max_evaluations": 20})
    assert result.stop_reason == "max_evaluations=20 reached"
    records = project.assert_consistent()  # one line, one TSV row and one trial per experiment
    assert evaluations(records) == 20 and result.tally.evaluations == 20
    tuned = [r for r in records if r.extra.get("runs")]
    assert tuned and all(1 <= len(r.extra["runs"]) <= 5 for r in tuned)
    assert len(records) < 20  # tuning runs live in their experiment's line
    project.run(operator={"kind": "perturb"}, budget={"max_experiments": None, "max_evaluations": 4}, tag="p")
    assert len(project.records("p")) == 4


def test_offline_hybrid_improves_on_the_landscape(project: Project) -> None:
    op = hybrid(None, space="space.yaml")
    result = project.run(operator=op, budget={"max_experiments": None, "max_evaluations": 20})
    records = project.assert_consistent()
    assert result.tally.best is not None and result.tally.best.value < 0.75 * records[0].value
    assert {r.extra.get("arm") for r in records[1:]} >= {"params", "restart"}


@pytest.fixture
def binpack(tmp_path: Path) -> Path:
    for name in (
        "evaluate.py",
        "priority.py",
        "program.md",
        "hybrid.yaml",
        "memetic.yaml",
        "llm_hybrid.jsonl",
    ):
        shutil.copy(BINPACK / name, tmp_path / name)
    harness = tmp_path / "evaluate.py"  # its timing repeats only: the metric is the same
    harness.write_text(harness.read_text().replace("REPEATS = 3", "REPEATS = 1"))
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "start")
    return tmp_path


def test_binpack_example_runs_by_replay_and_offline(binpack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    # The stand-in answers what the recording does not: a replay reproduces the recorded run row for
    # row only where the tuning's floating point does (the first CMA-ES tuning diverged on an AMD
    # EPYC with the recording's optuna, numpy and cmaes versions), and the example stays offline.
    spec = importlib.util.spec_from_file_location("stand_in", BINPACK / "stand_in.py")
    assert spec is not None and spec.loader is not None
    stand_in = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "stand_in", stand_in)  # its dataclasses look their module up
    spec.loader.exec_module(stand_in)
    with stand_in.serve(stand_in.StandIn("priority.py", stand_in.BINPACK_IDEAS)) as url:
        for name, evals in (("hybrid.yaml", 16), ("memetic.yaml", 12)):
            _run_binpack(binpack, name, evals, url)
    log = (binpack / ".metaexp/hybrid/llm.jsonl").read_text()
    exchanges = [json.loads(line) for line in log.splitlines()]
    assert exchanges[0]["replayed"], "the recorded run's first exchange replays"
    replayed = Project(binpack).records("hybrid")
    assert [r for r in replayed if r.extra.get("arm") == "llm" and "; tuned " in r.description]


def _run_binpack(binpack: Path, name: str, evals: int, url: str) -> None:
    import io

    import yaml

    data = yaml.safe_load((binpack / name).read_text())
    data["budget"]["max_evaluations"] = evals  # the start of the recorded run: same prompts
    if data["operator"].get("llm"):
        data["operator"]["llm"].update(base_url=url, replay_miss="live")
    (binpack / name).write_text(yaml.safe_dump(data, sort_keys=False))
    result = run(load_spec(binpack / name), out=io.StringIO())
    assert result.stop_reason == f"max_evaluations={evals} reached"
    records = Project(binpack).records(data["tag"])
    assert not [r for r in records if r.status is Status.INVALID], name
    assert result.tally.best is not None and result.tally.best.value < records[0].value - 5


def test_hybrid_spec_errors(project: Project) -> None:
    bad = project.spec(operator={"kind": "hybrid", "llm": {"kind": "params", "model": "m"}})
    with pytest.raises(SpecError, match="leave `kind` out"):
        load_spec(bad)
    noisy = project.spec(operator=hybrid(None), noise={"method": "sprt"})
    with pytest.raises(SpecError, match=r"tuning under noise\.method"):
        make_plan(load_spec(noisy))


def test_a_resumed_run_proposes_what_an_uninterrupted_one_does(make_project: Any) -> None:
    op = hybrid(None, tune={"budget": 4})
    whole, halves = make_project("whole"), make_project("halves")
    whole.run(operator=op, budget={"max_experiments": None, "max_evaluations": 16})
    halves.run(operator=op, budget={"max_experiments": None, "max_evaluations": 8})
    halves.run(operator=op, budget={"max_experiments": None, "max_evaluations": 16})
    a, b = whole.assert_consistent(), halves.assert_consistent()

    def seen(records: list[ExperimentRecord]) -> list[Any]:
        return [(r.description, r.value, [x["params"] for x in r.extra.get("runs", [])]) for r in records]

    assert seen(a) == seen(b) and len(a) > 3


def test_tuning_never_picks_a_run_that_breaks_a_constraint(project: Project) -> None:
    from helpers import TWO, TWO_HARNESS, two_metrics

    two_metrics(project)
    op = hybrid(None, space="space.yaml", schedule={"llm": 1.0, "params": 0.0}, tune={"budget": 6})
    project.run(
        operator=op,
        harness=TWO_HARNESS,
        metrics=TWO,
        objective={"primary": "loss", "constraints": ["width <= 9"]},
        budget={"max_experiments": None, "max_evaluations": 30},
    )
    records = project.assert_consistent()
    tuned = [r for r in records if r.extra.get("tune")]
    broken = [run for r in tuned for run in r.extra["runs"] if run["metrics"].get("width", 0) > 9]
    assert broken and all(run["value"] is None for run in broken)  # tried, never a candidate's value
    for rec in tuned:
        best = rec.extra["tune"]["best_run"]
        if best is not None:
            assert rec.extra["runs"][best]["metrics"]["width"] <= 9
        if rec.status.accepted:
            assert rec.metrics["width"] <= 9


@pytest.mark.parametrize("counts", ["evaluations", "proposals"])
def test_the_schedule_is_a_share_of_evaluations(project: Project, server: FakeOpenAI, counts: str) -> None:
    server.responder(widen)
    schedule = {"llm": 0.3, "params": 0.7, "counts": counts}
    op = hybrid(server, schedule=schedule, tune={"budget": 8})
    budget = {"max_experiments": None, "max_evaluations": 100, "max_invalid_streak": 50}
    result = project.run(operator=op, budget=budget)
    records = project.assert_consistent()
    ran = [r for r in records[1:] if r.status.harness_ran]

    def evaluations(arm: str) -> int:
        return sum(max(1, len(r.extra.get("runs", []))) for r in ran if r.extra.get("arm") == arm)

    share = evaluations("llm") / (evaluations("llm") + evaluations("params"))
    arms = [r.extra.get("arm") for r in records[1:]]
    proposals = arms.count("llm") / (arms.count("llm") + arms.count("params"))
    if counts == "evaluations":
        assert 0.2 <= share <= 0.4, f"LLM edits took {share:.0%} of the evaluations"
        assert proposals < 0.2  # an edit costs several runs: few of them
        report = project.cli("report", "metaexp.yaml").stdout
        line = next(x for x in report.splitlines() if x.strip().startswith("llm "))
        assert "arms (hybrid)" in report and f"runs ({share:.0%})" in line, report
    else:  # a share of the proposals
        assert 0.15 <= proposals <= 0.45, (proposals, share)
    assert result.tally.evaluations >= 95


def test_the_tuning_box_and_budget_follow_what_tuning_gained() -> None:
    from metaexp.operators.tuning import RADIUS, adapted

    assert adapted([1.0, 2.0], 8) == (RADIUS, 8)  # too few tunings yet: as set
    assert adapted([0.0, 0.0, None, 0.0, 0.0], 8) == (RADIUS * 0.5, 4)  # never helps: narrower, fewer runs
    assert adapted([0.3, 0.1, 0.2, 0.5, 0.4], 8) == (RADIUS * 1.5, 8)  # always helps: wider, all 8 runs
    assert adapted([0.0] * 10 + [0.1] * 5, 8) == (RADIUS * 1.5, 8)  # the last five decide
    assert adapted([0.1, 0.0, 0.0, 0.0, 0.0], 8) == (RADIUS * 0.7, 6)  # one in five helped
    assert adapted([0.0, 0.0, 0.0], 1) == (RADIUS, 1)  # no tuning to adapt


def test_a_hybrid_run_records_the_box_each_tuning_used(project: Project, server: FakeOpenAI) -> None:
    server.responder(widen)
    op = hybrid(server, schedule={"llm": 1.0, "params": 0.0}, tune={"budget": 4})
    project.run(operator=op, budget={"max_experiments": 7, "max_invalid_streak": 20})
    tunes = [r.extra["tune"] for r in project.assert_consistent() if "tune" in r.extra]
    assert len(tunes) >= 4 and tunes[0]["radius"] == 0.25
    gains = [t["gain"] for t in tunes]
    from metaexp.operators.tuning import adapted

    for i, t in enumerate(tunes):  # each box is what the tunings before it gained
        assert (t["radius"], t["evaluations"] <= adapted(gains[:i], 4)[1]) == (adapted(gains[:i], 4)[0], True)


def test_cmaes_numeric_steps_are_drawn_around_the_incumbent_not_the_middle(project: Project) -> None:
    """CMA-ES's first generation in a structure is centred on the incumbent's constants (it was the
    middle of the space, so every step of a wide space landed half a range away from what it was
    improving), and its later generations go on from there."""
    _wide(project)
    numeric_only = {"llm": 0.0, "params": 1.0}
    op = hybrid(None, space="wide.yaml", sampler="cmaes", style="global", schedule=numeric_only)
    said = project.cli("validate", str(project.spec(operator=op))).stdout
    assert "a numeric step of style global writes the suggestion whole and is the sampler's own trial" in said
    narrowed = {**op, "style": {"conservative": 0.7, "bold": 0.3}}
    said = project.cli("validate", str(project.spec(operator=narrowed, tag="narrowed"))).stdout
    assert "style conservative, bold narrows each numeric step, so none is the sampler's own trial" in said
    project.run(operator=op, budget={"max_experiments": 12})
    records = project.assert_consistent()
    at = {r.commit: r.params for r in records if r.commit}
    steps = [r for r in records if r.extra.get("arm") == "params" and r.parent in at]
    assert len(steps) >= 8
    gaps = sorted(abs(r.params["X"] - at[r.parent]["X"]) for r in steps)  # the incumbent X is 0..5
    assert gaps[len(gaps) // 2] < 20, gaps  # the draw's spread is a sixth of the range (16.7)


def _wide(project: Project) -> None:
    space = "X: {type: float, low: 0.0, high: 100.0}\nY: {type: float, low: -100.0, high: 0.0}\n"
    (project.root / "wide.yaml").write_text(space + "WIDTH: {type: int, low: 1, high: 32}\n")
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "a wide space")


@pytest.mark.parametrize("sampler,key", [("cmaes", "cma:generation"), ("lq-cmaes", PREFIX + "generation")])
def test_numeric_steps_written_whole_are_the_samplers_own_and_its_generations_go_on(
    project: Project, sampler: str, key: str
) -> None:
    """Each numeric step asks a study rebuilt from the records; a step written whole (style global)
    is kept as the sampler's own trial with its attrs, so CMA-ES advances its generations across
    steps and closes in (it stayed in its first generation: every step a draw around the incumbent)."""
    _wide(project)
    numeric_only = {"llm": 0.0, "params": 1.0}
    op = hybrid(None, space="wide.yaml", sampler=sampler, style="global", schedule=numeric_only)
    project.run(operator=op, budget={"max_experiments": 36})
    records = project.assert_consistent()
    steps = [r for r in records if r.extra.get("arm") == "params" and r.status.harness_ran]
    assert all(r.extra["exact"] and r.extra["asked"] == r.params for r in steps)
    generation = [int(r.extra["sampler_attrs"][key]) for r in steps]
    assert generation == sorted(generation) and generation[-1] >= 3, generation
    first = [r.value for r, g in zip(steps, generation, strict=True) if g == 0]
    last = [r.value for r, g in zip(steps, generation, strict=True) if g == generation[-1]]
    assert statistics.median(last) < 0.5 * statistics.median(first), (first, last)  # it closes in


def test_a_hybrids_lq_cmaes_steps_are_one_search_and_a_resumed_run_goes_on_with_it(make_project: Any) -> None:
    """lq-cmaes's trials carry where its search began: the steps the records keep are the points of
    one search (replayed from the first step's seed and start with the values it was told), though
    the x0 the hybrid gives it (the incumbent) moves; a resumed run proposes what an uninterrupted
    one does."""
    import numpy as np
    from optuna._transform import _SearchSpaceTransform
    from optuna.distributions import FloatDistribution, IntDistribution

    from metaexp.operators.lq_cmaes import search
    from metaexp.operators.params import value_of
    from metaexp.operators.samplers import cma_popsize

    op = hybrid(None, space="space.yaml", sampler="lq-cmaes", style="global", tune={"budget": 4})
    whole, halves = make_project("whole"), make_project("halves")
    whole.run(operator=op, budget={"max_experiments": None, "max_evaluations": 32})
    halves.run(operator=op, budget={"max_experiments": None, "max_evaluations": 16})
    halves.run(operator=op, budget={"max_experiments": None, "max_evaluations": 32})
    a, b = whole.assert_consistent(), halves.assert_consistent()
    assert [(r.description, r.value) for r in a] == [(r.description, r.value) for r in b]
    steps = [r for r in a if "sampler_attrs" in r.extra]
    assert len({r.parent for r in steps}) > 1 and len(steps) > 8  # the incumbent moved between steps
    first = steps[0].extra["sampler_attrs"]
    start = (first[PREFIX + "seed"], np.array(first[PREFIX + "mean"]))  # where the search began
    run = search(*start, cma_popsize(3, "lq-cmaes"), first[PREFIX + "tau"])  # at its recorded trust
    dists = {"WIDTH": IntDistribution(1, 32), "X": FloatDistribution(-5, 5), "Y": FloatDistribution(-5, 5)}
    transform, x = _SearchSpaceTransform(dists, transform_0_1=True), next(run)[0]
    for r in steps:
        assert transform.untransform(x) == r.extra["asked"], r.n
        x = run.send(value_of(r))[0]
