"""Population runs on a real Ray runtime: islands, migration, escape, crossover, duplicates, faults."""

from __future__ import annotations

import io
import json
import re
import threading
import time

import pytest
from conftest import Project, git
from helpers import POPULATION, check_population, run_population

from metaexp.errors import MetaexpError
from metaexp.record.records import Status
from metaexp.run import RunResult, run
from metaexp.run.cluster import check_resources
from metaexp.spec import load_spec


def test_population_run_islands_migration_escape_and_resume(project: Project, ray_session: None) -> None:
    result = run_population(project, budget={"max_experiments": 14})
    assert result.stop_reason == "max_experiments=14 reached"
    records = check_population(project)
    assert sum(1 for r in records if r.status.harness_ran) == 14
    assert {r.island for r in records if r.n > 1} == {0, 1}
    migrants = [r for r in records if r.status is Status.MIGRATE]
    assert migrants and all("from island" in r.description for r in migrants)
    for m in migrants:  # a copy of the sending island's individual, sent along the ring
        number, sender = (
            int(x) for x in re.fullmatch(r"migrant #(\d+) from island (\d+)", m.description).groups()
        )
        assert sender == (m.island - 1) % 2 and records[number - 1].commit == m.commit
    assert any(r.status is Status.ESCAPE for r in records)
    for k in (0, 1):
        assert git(project.root, "rev-parse", f"autoexp/landscape/island-{k}").strip()
    best = [r for r in records if r.best][-1]
    assert git(project.root, "rev-parse", "autoexp/landscape/best").strip() == best.commit

    population = json.loads((project.root / ".metaexp/landscape/population.json").read_text())
    assert [i["island"] for i in population["islands"]] == [0, 1] and population["hall_of_fame"]["members"]
    assert population["islands"][0]["logbook"][-1]["size"] >= 1
    report = project.cli("report", "metaexp.yaml").stdout
    assert "island 0: gen" in report and "hall of fame (loss):" in report

    run_population(project, budget={"max_experiments": 20})  # resume
    again = check_population(project)
    assert again[: len(records)] == records and sum(1 for r in again if r.status.harness_ran) == 20


def test_duplicates_are_not_evaluated_twice(project: Project, ray_session: None) -> None:
    space = (
        "X: {type: float, low: 1.0, high: 2.0, step: 0.5}\n"
        "Y: {type: float, low: -2.0, high: -1.5, step: 0.5}\n"
    )
    (project.root / "space.yaml").write_text(space)
    project.write("space.yaml", space)
    run_population(
        project,
        strategy={"islands": 1, "population": 3},
        budget={"max_experiments": 8, "max_invalid_streak": 50},
    )
    records = check_population(project)
    dupes = [r for r in records if r.status is Status.INVALID and r.reason.startswith("duplicate of")]
    assert dupes and all(r.harness_s == 0 for r in dupes)
    evaluated = [r.extra["fingerprint"] for r in records if r.status.harness_ran]
    assert len(evaluated) == len(set(evaluated))


def test_a_killed_island_is_restarted_with_nothing_lost(project: Project, ray_session: None) -> None:
    import ray

    project.write("slow.py", "import time\ntime.sleep(0.3)\nexec(open('evaluate.py').read())\n")
    done: list[RunResult] = []
    thread = threading.Thread(
        target=lambda: done.append(
            run_population(
                project,
                harness={"command": "python slow.py", "immutable": ["evaluate.py", "slow.py"]},
                budget={"max_experiments": 12},
            )
        )
    )
    thread.start()
    deadline = time.monotonic() + 60
    while len(project.records()) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    ray.kill(ray.get_actor("metaexp:landscape:island-1"), no_restart=True)
    thread.join(timeout=120)
    assert done and done[0].stop_reason == "max_experiments=12 reached"
    records = check_population(project)
    assert sum(1 for r in records if r.status.harness_ran) == 12
    assert any(r.island == 1 and r.n > 6 for r in records)  # island 1 went on after its restart


def test_an_impossible_resource_request_is_an_error() -> None:
    with pytest.raises(MetaexpError, match=r"ray.eval_resources: no node can give \{'GPU': 1\}"):
        check_resources({"num_cpus": 1, "num_gpus": 1}, {"CPU": 2.0, "memory": 1e9})
    with pytest.raises(MetaexpError, match="node2"):
        check_resources({"num_cpus": 1, "resources": {"node2": 1}}, {"CPU": 2.0})
    check_resources({"num_cpus": 0.5, "resources": {"node2": 0.5}}, {"CPU": 2.0, "node2": 1.0})


def test_population_spec_refuses_a_bare_branch_of_the_same_tag(project: Project, ray_session: None) -> None:
    project.run(budget={"max_experiments": 2})  # a single-lineage run: branch autoexp/landscape
    with pytest.raises(MetaexpError, match="git cannot have both"):
        run_population(project, budget={"max_experiments": 4})


def test_crossover_composes_two_independent_improvements(project: Project) -> None:
    from metaexp.candidate import compose
    from metaexp.record.git import Git

    base = (project.root / "params.py").read_text()
    git(project.root, "checkout", "-qb", "a")
    project.write("params.py", base.replace("X = 3.0", "X = 1.5"))  # improves X only
    git(project.root, "checkout", "-q", "-b", "b", "HEAD~1")
    project.write("params.py", base.replace("WIDTH = 7", "WIDTH = 12"))  # improves WIDTH only
    a, b = (git(project.root, "rev-parse", ref).strip() for ref in ("a", "b"))
    ours, changed = compose(Git(project.root), ["params.py"], a, b)  # type: ignore[misc]
    child = changed["params.py"].decode()
    assert "X = 1.5" in child and "WIDTH = 12" in child and "X = 1.5" in ours["params.py"].decode()
    assert set(changed) == {"params.py"}

    def loss(text: str) -> float:
        values = {
            k.strip(): float(v.split("#")[0])
            for k, v in (
                line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
            )
        }
        return (values["X"] - 1.5) ** 2 + (values["Y"] + 0.5) ** 2 + 0.1 * (values["WIDTH"] - 12) ** 2

    parents = [loss(git(project.root, "show", f"{c}:params.py")) for c in (a, b)]
    assert loss(child) < min(parents)  # the composed child beats both parents

    conflicting = git(project.root, "checkout", "-q", "-b", "c", "a~1")
    del conflicting
    project.write("params.py", base.replace("X = 3.0", "X = 9.0"))
    c = git(project.root, "rev-parse", "c").strip()
    assert compose(Git(project.root), ["params.py"], a, c) == "merge conflict in params.py"
    assert (
        compose(Git(project.root), ["params.py"], a, git(project.root, "rev-parse", "a~1").strip())
        == "the merge changes nothing"
    )


def test_map_elites_keeps_an_elite_per_cell(project: Project, ray_session: None) -> None:
    project.write("qd.py", "import params\nprint('width:', params.WIDTH)\nexec(open('evaluate.py').read())\n")
    run_population(
        project,
        harness={"command": "python qd.py", "immutable": ["evaluate.py", "qd.py"]},
        metrics={"loss": {"direction": "minimize"}, "width": {"direction": "maximize"}},
        strategy={
            "islands": 1,
            "population": 4,
            "selection": "map_elites",
            "features": [{"metric": "width", "low": 0, "high": 32, "bins": 4}],
        },
        operator={"kind": "perturb", "space": "space.yaml", "style": "bold"},
        budget={"max_experiments": 16},
    )
    records = check_population(project)
    kept = [r for r in records if r.status is Status.KEEP and r.n > 1]
    cells = {int(r.metrics["width"] // 8) for r in [records[0], *kept]}
    assert len(cells) >= 2  # more than one niche holds an elite
    best = records[0].value
    assert any(r.value > best for r in kept)  # a worse child kept because its cell was empty
    report = project.cli("report", "metaexp.yaml").stdout
    assert (
        "archive" in report
        and (project.root / ".metaexp/landscape/archive.png").read_bytes()[:4] == b"\x89PNG"
    )


def test_islands_can_work_on_different_aspects(project: Project, ray_session: None) -> None:
    overrides = [{"style": "bold"}, {"style": "conservative"}]
    run_population(project, strategy={"islands": overrides, "population": 1}, budget={"max_experiments": 7})
    records = check_population(project)
    by_island = {k: {r.style for r in records[1:] if r.island == k and r.style} for k in (0, 1)}
    assert by_island == {0: {"bold"}, 1: {"conservative"}}


def test_value_crossover_makes_children_of_two_parents_and_the_report_counts_them(project: Project) -> None:
    strategy = {"islands": 1, "population": 4, "crossover_rate": 0.8, "selection": "tournament"}
    operator = {"kind": "perturb", "space": "space.yaml", "style": "bold"}  # three values per mutation
    spec = load_spec(project.spec(strategy=strategy, operator=operator, budget={"max_experiments": 16}))
    run(spec, out=io.StringIO(), scheduler="serial")
    records = check_population(project)
    crossed = [r for r in records if r.style == "crossover"]
    children = [r for r in crossed if r.status.harness_ran]
    assert children, [r.description for r in records]
    for child in children:  # each takes values from both parents
        a, b = (next(r for r in records if r.commit == c) for c in child.extra["parents"])
        assert child.parent == a.commit and child.extra["crossover"] in ("block", "uniform")
        mine = {n for n, v in child.params.items() if v == a.params[n] != b.params[n]}
        theirs = {n for n, v in child.params.items() if v == b.params[n] != a.params[n]}
        assert mine and theirs
    population = json.loads((project.root / ".metaexp/landscape/population.json").read_text())
    assert population["crossovers"] == {
        "evaluated": len(children),
        **({"invalid": len(crossed) - len(children)} if len(crossed) > len(children) else {}),
    }
    assert "crossovers: " in project.cli("report", "metaexp.yaml").stdout


def test_a_merge_that_conflicts_or_changes_nothing_is_retried_on_the_next_pair(project: Project) -> None:
    from types import SimpleNamespace

    from metaexp.candidate import Candidate
    from metaexp.record.git import Git
    from metaexp.run.core import Core

    base_text = (project.root / "params.py").read_text()
    start = git(project.root, "rev-parse", "HEAD").strip()
    commits = {}
    for name, old, new in (
        ("a", "X = 3.0", "X = 1.5"),
        ("b", "WIDTH = 7", "WIDTH = 12"),
        ("c", "X = 3.0", "X = 9.0"),
    ):
        git(project.root, "checkout", "-q", "-b", name, start)
        project.write("params.py", base_text.replace(old, new))
        commits[name] = git(project.root, "rev-parse", name).strip()
    a, b, c = commits["a"], commits["b"], commits["c"]
    core = SimpleNamespace(session=SimpleNamespace(ws=SimpleNamespace(git=Git(project.root))))
    core.plan = SimpleNamespace(target_files={"params.py": b""})

    def crossover(*pairs: tuple[str, str]) -> Candidate:
        (ours, theirs), *rest = pairs
        cand = Candidate(
            ours, {}, "crossover", "crossover", kind="crossover", other=theirs, alternatives=tuple(rest)
        )
        return Core._compose(core, cand)  # type: ignore[arg-type]

    child = crossover(
        (a, c), (a, start), (a, b)
    )  # a conflict, a merge that changes nothing, then one that works
    assert child.kind == "change" and child.other == b and child.extra["parents"] == [a, b]
    assert child.extra["merge_tries"] == 3
    merged = child.files["params.py"].decode()
    assert "X = 1.5" in merged and "WIDTH = 12" in merged
    failed = crossover((a, c), (a, start))
    assert failed.kind == "invalid" and "merge conflict in params.py" in failed.reason
    assert "2 pair(s) tried" in failed.reason


def test_a_population_that_starts_random_draws_its_first_members_from_the_whole_space(
    project: Project, ray_session: None
) -> None:
    """strategy.initial random: an island's first population - 1 children are fresh points of the
    declared space (children of the baseline, every value drawn), the rest the operator's steps."""
    from metaexp.spec.space import load_space

    strategy = {**POPULATION, "population": 4, "initial": "random", "crossover_rate": 0.0}
    run_population(
        project,
        strategy=strategy,
        operator={"kind": "perturb", "space": "space.yaml", "style": "conservative"},
        budget={"max_experiments": 14},
    )
    records = check_population(project)
    space, base = load_space(project.root / "space.yaml"), records[0]
    for k in (0, 1):
        mine = sorted(
            (r for r in records if r.island == k and r.n > 1 and r.status is not Status.MIGRATE),
            key=lambda r: r.generation,
        )
        first, rest = mine[:3], mine[3:]
        assert [r.generation for r in first] == [0, 1, 2] and rest
        for rec in first:
            assert rec.style == "initial" and rec.parent == base.commit, rec
            assert all(space[n].low <= rec.params[n] <= space[n].high for n in space)
            assert sum(rec.params[n] != base.params[n] for n in space) >= 2  # a step changes one
        assert len({tuple(sorted(r.params.items())) for r in first}) == 3
        assert all(r.style != "initial" for r in rest)


def test_a_random_start_falls_back_to_the_baseline_for_an_operator_that_cannot_draw_a_point(
    project: Project,
) -> None:
    strategy = {**POPULATION, "initial": "random"}
    project.spec(strategy=strategy, operator={"kind": "llm", "model": "m", "space": None})
    proc = project.cli("validate", "metaexp.yaml", check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    warning = "strategy.initial random: operator.kind llm cannot draw a fresh point"
    assert warning in proc.stdout + proc.stderr
