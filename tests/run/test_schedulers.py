"""The two schedulers are two ways to drive one core: the same spec run serially (in this process) and in
parallel (a Ray actor for the lineage, Ray tasks for the evaluations) gives the same records."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Project, git
from fake_openai import FakeOpenAI
from helpers import NOISY, NOISY_HARNESS, PICKY, PICKY_HARNESS, comparable, landscape_model

from metaexp.record.records import ExperimentRecord, Status
from metaexp.run import Scheduler, run
from metaexp.spec import load_spec

pytestmark = pytest.mark.timeout(300)

SPRT = {"method": "sprt", "sprt": {"delta": 0.3, "min_runs": 3, "max_runs": 6}}
TIMED = ("harness_s", "latency_s", "node")  # nested too: every run of a repeated or tuned experiment
SHAS = ("commit",)  # a parent's runs name its commit: its tree is compared instead


def _operator(kind: str, server: FakeOpenAI) -> dict[str, Any]:
    llm = {"model": "fake", "base_url": server.base_url, "timeout_s": 5, "max_retries": 0, "notes_every": 3}
    style = {"conservative": 1, "bold": 1}
    if kind == "params":
        return {"kind": "params", "space": "space.yaml", "sampler": "tpe", "style": style}
    if kind == "perturb":
        return {"kind": "perturb", "style": style}
    if kind == "llm":
        return {"kind": "llm", **llm, "style": style}
    return {
        "kind": "hybrid",
        "space": "space.yaml",
        "llm": {**llm, "style": "bold"},
        "tune": {"sampler": "random", "budget": 3},
        "schedule": {"llm": 0.5, "params": 0.5},
    }


CASES = [
    ("params", False),
    ("params", True),
    ("perturb", False),
    ("perturb", True),
    ("llm", False),
    ("llm", True),
    ("hybrid", False),
]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        fake.responder(landscape_model)
        yield fake


def _run(
    project: Project, scheduler: Scheduler, kind: str, noise: bool, server: FakeOpenAI
) -> list[ExperimentRecord]:
    settings: dict[str, Any] = {
        "operator": _operator(kind, server),
        "strategy": {"explore_rate": 0.2},
        "budget": {"max_experiments": 7, "max_invalid_streak": 20},
        "ray": {"max_concurrent_evals": 2, "eval_resources": {"num_cpus": 0.5}},
    }
    if noise:
        project.write("noisy.py", NOISY)
        settings.update(harness=NOISY_HARNESS, noise=SPRT)
    result = run(load_spec(project.spec(**settings)), out=io.StringIO(), scheduler=scheduler)
    assert result.stop_reason == "max_experiments=7 reached", result.stop_reason
    return project.assert_consistent()


def _untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in (*TIMED, *SHAS)}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _tree(project: Project, commit: str | None) -> str | None:
    return git(project.root, "rev-parse", f"{commit}^{{tree}}").strip() if commit else None


def _view(project: Project, rec: ExperimentRecord) -> dict[str, Any]:
    """What must agree: every field but timing, with commits named by their trees (a commit's hash
    holds its time), in the description and a crossover's parents too."""
    data = _untimed(comparable(rec))
    for sha in (c for c in [rec.commit, rec.parent, *rec.extra.get("parents", [])] if c):
        data["description"] = data["description"].replace(sha[:7], (_tree(project, sha) or "")[:7])
    if "parents" in rec.extra:
        data["extra"]["parents"] = [_tree(project, c) for c in rec.extra["parents"]]
    return {**data, "commit": _tree(project, rec.commit), "parent": _tree(project, rec.parent)}


@pytest.mark.parametrize(("kind", "noise"), CASES)
def test_serial_and_parallel_record_the_same_experiments(
    make_project: Callable[[str], Project], server: FakeOpenAI, ray_session: None, kind: str, noise: bool
) -> None:
    serial, parallel = make_project("serial"), make_project("parallel")
    one = [_view(serial, r) for r in _run(serial, "serial", kind, noise, server)]
    other = [_view(parallel, r) for r in _run(parallel, "parallel", kind, noise, server)]
    assert len(one) == len(other)
    for a, b in zip(one, other, strict=True):
        assert a == b, (a["n"], {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)})
    assert sum(r["status"] is Status.KEEP for r in one) >= 2  # a change was kept, not just the baseline
    if noise:
        assert all("runs" in r["extra"] for r in one[1:] if r["status"] in (Status.KEEP, Status.DISCARD))
    if kind == "hybrid":
        assert any("tune" in r["extra"] for r in one)  # tuning ran (on a worker in the parallel run)


POPULATION = {
    "islands": 2,
    "population": 3,
    "migration": {"every": 3, "count": 1},
    "crossover_rate": 0.3,
    "escape": {"patience": 4, "action": "random_restart"},
}


def _population(
    project: Project, scheduler: Scheduler, slots: int, cpus: float = 0.5
) -> list[dict[str, Any]]:
    settings: dict[str, Any] = {
        "operator": {"kind": "perturb", "space": "space.yaml", "style": {"conservative": 1, "bold": 1}},
        "strategy": POPULATION,
        "budget": {"max_experiments": 16, "max_invalid_streak": 30},
        "ray": {"max_concurrent_evals": slots, "eval_resources": {"num_cpus": cpus}, "schedule": "ordered"},
    }
    result = run(load_spec(project.spec(**settings)), out=io.StringIO(), scheduler=scheduler)
    assert result.stop_reason == "max_experiments=16 reached", result.stop_reason
    return [_view(project, r) for r in project.assert_consistent()]


def test_an_ordered_population_records_the_same_run_after_run(
    make_project: Callable[[str], Project], ray_session: None
) -> None:
    """ray.schedule ordered: the records depend on the seed only, not on which evaluation ends first."""
    first = _population(make_project("one"), "parallel", slots=3)
    again = _population(make_project("two"), "parallel", slots=3)
    fewer_workers = _population(make_project("three"), "parallel", slots=3, cpus=1.0)  # 2 at once, not 3
    assert first == again == fewer_workers
    statuses = {r["status"] for r in first}
    assert {Status.KEEP, Status.MIGRATE} <= statuses


def test_serial_and_ordered_with_one_slot_record_the_same_population(
    make_project: Callable[[str], Project], ray_session: None
) -> None:
    assert _population(make_project("serial"), "serial", slots=1) == _population(
        make_project("ordered"), "parallel", slots=1
    )


def test_a_population_evaluating_one_at_a_time_runs_without_ray_and_records_the_same(
    make_project: Callable[[str], Project], ray_session: None
) -> None:
    """ray.schedule ordered, one slot, a local Ray: `run` picks the serial scheduler, which records
    what the ordered one does (Ray cannot even be imported in that process)."""
    import subprocess
    import sys

    expected = _population(make_project("ordered"), "parallel", slots=1)
    project = make_project("auto")
    settings = {
        "operator": {"kind": "perturb", "space": "space.yaml", "style": {"conservative": 1, "bold": 1}},
        "strategy": POPULATION,
        "budget": {"max_experiments": 16, "max_invalid_streak": 30},
        "ray": {"max_concurrent_evals": 1, "eval_resources": {"num_cpus": 0.5}, "schedule": "ordered"},
    }
    project.spec(**settings)
    code = "import sys; sys.modules['ray'] = None; import metaexp; metaexp.run('metaexp.yaml')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=project.root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [_view(project, r) for r in project.assert_consistent()] == expected


def test_a_crash_streaks_probe_runs_on_a_worker_and_its_log_comes_back(
    project: Project, ray_session: None
) -> None:
    """Every change crashes, the start runs (PICKY). With two evaluations in flight a streak can pass
    the limit before a probing job returns: the run waits for a probe instead of aborting, each probe
    (run in a Ray task) passes, its log lands at logs/<n>.probe.log, and the run reaches its budget."""
    project.write("picky.py", PICKY)
    settings: dict[str, Any] = {
        "harness": PICKY_HARNESS,
        "budget": {"max_experiments": 8, "abort_on_consecutive_crashes": 2},
        "ray": {"max_concurrent_evals": 2, "eval_resources": {"num_cpus": 0.5}},
    }
    result = run(load_spec(project.spec(**settings)), out=io.StringIO(), scheduler="parallel")
    assert result.stop_reason == "max_experiments=8 reached", result.stop_reason
    records = project.assert_consistent()
    probed = [r for r in records if "probe" in r.extra]
    assert probed and all(r.status is Status.CRASH and r.extra["probe"]["status"] == "ok" for r in probed)
    logs = project.root / ".metaexp" / "landscape" / "logs"
    assert all("loss: 1.0" in (logs / f"{r.n}.probe.log").read_text() for r in probed)
    assert result.tally.evaluations == 8 + len(probed)
