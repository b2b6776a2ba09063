"""The two schedulers are two ways to drive one core: the same spec run serially (in this process) and in
parallel (a Ray actor for the lineage, Ray tasks for the evaluations) gives the same records."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Project, git
from fake_openai import FakeOpenAI
from helpers import NOISY, NOISY_HARNESS, comparable, landscape_model

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


def _view(project: Project, rec: ExperimentRecord) -> dict[str, Any]:
    """What must agree: every field but timing, and the commits' trees instead of their hashes."""
    tree: Callable[[str | None], str | None] = lambda c: (  # noqa: E731
        git(project.root, "rev-parse", f"{c}^{{tree}}").strip() if c else None
    )
    data = _untimed(comparable(rec))
    return {**data, "commit": tree(rec.commit), "parent": tree(rec.parent)}


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
