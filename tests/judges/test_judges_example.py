"""The judges example runs offline end to end: the operator and the judges both answer from recordings.

`metaexp init --example judges` then `metaexp run metaexp.yaml`, with no API key and every
proxy pointing nowhere, must reproduce the recorded run row for row. The expected rows are
derived here from the two recordings (llm.jsonl's proposals, judges.jsonl's answers) and the
rubric, independently of the loop: the baseline and each proposed file are scored from the
recorded answers, and a hill climb keeps what beats the incumbent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import Project, git

from metaexp.judges import load_rubric, score, state_key
from metaexp.record.records import Status

EXAMPLE = Path(__file__).resolve().parents[2] / "harnesses" / "judges"
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens, so any request fails at once


def offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and "proxy" not in k.lower()}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[name] = NOWHERE
    return env


def headlines_of(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def expected_rows() -> list[tuple[str, float, str]]:
    """(status, pass_rate, description) per experiment, from the recordings alone."""
    rubric = load_rubric(EXAMPLE / "rubric.yaml")
    answers = {}
    for raw in (EXAMPLE / "judges.jsonl").read_text().splitlines():
        line = json.loads(raw)
        answers[line["state_key"]] = line["response"]["content"] == "PASS"

    def pass_rate(headlines: list[str]) -> float:
        verdicts = [
            {c.id: answers[state_key(rubric.model, c, h)] for c in rubric.criteria} for h in headlines
        ]
        return round(sum(score(v, rubric) for v in verdicts) / len(verdicts), 6)

    baseline = pass_rate(headlines_of((EXAMPLE / "headlines.txt").read_text()))
    rows, incumbent = [("keep", baseline, "baseline")], baseline
    for raw in (EXAMPLE / "llm.jsonl").read_text().splitlines():
        line = json.loads(raw)
        if line["purpose"] != "propose":
            continue
        reply = line["response"]["content"]
        hypothesis = re.match(r"Hypothesis: (.*)", reply)
        body = re.search(r"^headlines\.txt\n```\n(.*?)```$", reply, re.DOTALL | re.MULTILINE)
        assert hypothesis and body, reply
        value = pass_rate(headlines_of(body.group(1)))
        status = "keep" if value > incumbent else "discard"  # hill_climb: ties are discarded
        incumbent = max(incumbent, value)
        rows.append((status, value, hypothesis.group(1)))
    return rows


def test_the_recordings_are_the_rule_based_stand_ins() -> None:
    spec = yaml.safe_load((EXAMPLE / "metaexp.yaml").read_text())
    operator = spec["operator"]
    assert operator["replay"] == "llm.jsonl" and operator["replay_miss"] == "error"
    assert spec["harness"]["env"]["JUDGES_REPLAY"] == "judges.jsonl"
    lines = [json.loads(raw) for raw in (EXAMPLE / "llm.jsonl").read_text().splitlines()]
    assert {line["request"]["model"] for line in lines} == {operator["model"]} == {"rule-based-proposer"}
    assert all(line["response"] and not line["error"] and not line["replayed"] for line in lines)
    purposes = [line["purpose"] for line in lines]
    assert purposes.count("propose") == spec["budget"]["max_experiments"] - 1  # the first is the baseline
    assert "notes" in purposes and "retry" not in purposes


def metaexp(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with offline_env() as its whole environment (Project.cli adds os.environ's)."""
    argv = [sys.executable, "-m", "metaexp", *args]
    env, devnull = offline_env(), subprocess.DEVNULL
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, stdin=devnull, timeout=120)


def test_the_example_runs_offline_by_replay(tmp_path: Path) -> None:
    demo = Project(tmp_path / "demo")
    assert metaexp(tmp_path, "init", "--example", "judges", str(demo.root)).returncode == 0
    proc = metaexp(demo.root, "run", "metaexp.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "max_experiments=8 reached" in proc.stdout + proc.stderr

    records = demo.assert_consistent("judges")
    expected = expected_rows()
    assert len(records) == len(expected) == 8
    assert [(str(r.status), r.value, r.description) for r in records] == expected
    assert {"keep", "discard"} <= {status for status, _, _ in expected}  # the ratchet is exercised
    best = max(r.value for r in records if r.status is Status.KEEP)
    assert best >= records[0].value
    kept = git(demo.root, "show", "refs/metaexp/judges/best:headlines.txt")
    shipped = (EXAMPLE / "headlines.txt").read_text()
    assert len(kept.splitlines()) == len(shipped.splitlines())  # rewrites, no lines added or lost

    out = demo.root / ".metaexp" / "judges"
    replayed = [json.loads(raw) for raw in (out / "llm.jsonl").read_text().splitlines()]
    recorded = (EXAMPLE / "llm.jsonl").read_text().splitlines()
    assert len(replayed) == len(recorded) and all(line["replayed"] for line in replayed)
    assert (out / "notes.md").read_text().startswith("# Notes (rule-based stand-in)")
    for n in range(1, 9):  # every judge answer came from judges.jsonl, none was asked for
        assert "answers replayed, 0 live" in (out / "logs" / f"{n}.log").read_text()


def test_the_stand_in_proposer_starts_from_the_shipped_headlines_and_invents_no_number() -> None:
    spec = importlib.util.spec_from_file_location("make_recording", EXAMPLE / "make_recording.py")
    assert spec and spec.loader
    stand_in = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stand_in)
    assert stand_in.check_drafts((EXAMPLE / "program.md").read_text()) == []
    shipped = headlines_of((EXAMPLE / "headlines.txt").read_text())
    assert [stand_in.DRAFTS[story]["orig"] for story in range(1, 6)] == shipped
    for move in stand_in.MOVES:
        assert {move.before, move.after} <= set(stand_in.DRAFTS[move.story])
