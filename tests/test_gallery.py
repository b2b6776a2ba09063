"""The gallery examples (regex, sql, binpack): each initialises, validates, runs a few offline
experiments through the CLI with consistent records and both metrics in every evaluated row;
a wrong SQL answer is never kept, however it arrives."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from conftest import Project, git
from fake_openai import FakeOpenAI

from metaexp.record.records import Status

GALLERY = {  # example: (primary, the other metric, the primary's direction)
    "regex": ("f1", "match_ms", "maximize"),
    "sql": ("exec_ms", "correct", "minimize"),
    "binpack": ("excess_bins", "pack_ms", "minimize"),
}


def init(tmp_path: Path, name: str, **overrides: object) -> Project:
    demo = Project(tmp_path / name)
    Project(tmp_path).cli("init", "--example", name, str(demo.root))
    spec_path = demo.root / "metaexp.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec.update(overrides)
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert "ok" in demo.cli("validate", "metaexp.yaml").stdout
    return demo


@pytest.mark.parametrize("name", sorted(GALLERY))
def test_example_runs_offline_with_two_metrics(tmp_path: Path, name: str) -> None:
    primary, other, direction = GALLERY[name]
    demo = init(tmp_path, name, budget={"max_experiments": 6})
    spec = yaml.safe_load((demo.root / "metaexp.yaml").read_text())
    assert spec["objective"]["primary"] == primary and spec["metrics"][primary]["direction"] == direction
    assert spec["operator"]["kind"] in ("perturb", "params")  # offline: runs with no endpoint
    demo.cli("run", "metaexp.yaml")
    records = demo.assert_consistent(name)
    evaluated = [r for r in records if r.status.harness_ran]
    assert len(evaluated) == 6 and records[0].status is Status.KEEP
    skipped = [r for r in records if not r.status.harness_ran]
    assert all(r.reason.startswith("duplicate of #") for r in skipped)  # repeats are not run again
    assert evaluated and all(not r.status.failed for r in evaluated), [(r.n, r.reason) for r in records]
    for r in evaluated:
        assert {primary, other} <= set(r.metrics), (r.n, r.metrics)
        assert r.value == r.metrics[primary]
    kept = [r.value for r in records if r.status is Status.KEEP]
    sign = 1 if direction == "maximize" else -1
    assert all(sign * (b - a) > 0 for a, b in itertools.pairwise(kept)), kept  # a ratchet
    if name == "sql":
        assert all(r.metrics["correct"] == 1 for r in evaluated)


def test_a_wrong_query_is_never_kept(tmp_path: Path) -> None:
    wrong = "WHERE o.order_date BETWEEN '2024-03-01' AND '2024-03-30'"  # drops March 31st
    right = "WHERE o.order_date >= '2024-03-01' AND o.order_date < '2024-04-01'"
    base = "WHERE o.order_date BETWEEN '2024-03-01' AND '2024-03-31'"

    def edit(old: str, new: str) -> str:
        blocks = f"<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n"
        return f"Hypothesis: rewrite the date range\nquery.sql\n{blocks}"

    with FakeOpenAI() as server:
        server.reply(edit(base, wrong))  # a wrong answer: the harness exits 1
        server.reply(edit(base, right))  # the same answer, written differently
        operator = {
            "kind": "llm",
            "model": "fake",
            "base_url": server.base_url,
            "timeout_s": 5,
            "max_retries": 0,
            "notes_every": None,
            "retry_invalid": False,
        }
        demo = init(tmp_path, "sql", operator=operator, budget={"max_experiments": 3})
        demo.cli("run", "metaexp.yaml")
    records = demo.assert_consistent("sql")
    assert [r.status for r in records][:2] == [Status.KEEP, Status.CRASH]
    assert records[1].metrics.get("correct", 0) == 0 and records[1].value is None
    assert records[2].status in (Status.KEEP, Status.DISCARD) and records[2].metrics["correct"] == 1
    for r in records:
        if r.status.accepted:
            assert wrong not in git(demo.root, "show", f"{r.commit}:query.sql")
    assert wrong not in git(demo.root, "show", "refs/metaexp/sql/best:query.sql")

    # A wrong query at the start: the baseline crashes, the run stops, nothing is kept.
    query = demo.root / "query.sql"
    query.write_text(query.read_text().replace("o.status = 'shipped'", "o.status <> 'shipped'"))
    git(demo.root, "commit", "-qam", "a wrong query")
    spec = yaml.safe_load((demo.root / "metaexp.yaml").read_text())
    spec.update(tag="sql-wrong", operator={"kind": "perturb", "space": "search_spaces/sql.yaml"})
    (demo.root / "metaexp.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    proc = demo.cli("run", "metaexp.yaml", check=False)
    assert proc.returncode == 1
    records = demo.records("sql-wrong")
    assert [r.status for r in records] == [Status.CRASH]
    assert "correct: 0" in (demo.root / ".metaexp" / "sql-wrong" / "logs" / "1.log").read_text()
