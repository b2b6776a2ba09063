"""Synthetic judges: kappa, rubric and labels files, answer parsing, scores, validation, the example."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from metaexp.cli import main as cli
from metaexp.judges import (
    JudgeError,
    JudgesRefused,
    Labelled,
    Rubric,
    check_validated,
    client_for,
    cohen_kappa,
    judge,
    load_labels,
    load_rubric,
    parse_answer,
    score,
    state_key,
    validate,
)
from metaexp.llm import Reply, Usage

EXAMPLE = Path(__file__).resolve().parents[2] / "harnesses" / "judges"


def make_rubric(**overrides: object) -> Rubric:
    data: dict[str, object] = {
        "model": "m",
        "criteria": [
            {"id": "short", "question": "Is it short?", "weight": 2},
            {"id": "number", "question": "Has it a number?"},
            {"id": "named", "question": "Does it name someone?"},
        ],
        **overrides,
    }
    return Rubric.model_validate(data)


class ScriptedClient:
    """Answers each criterion's question from a table: {question: reply or a function of the item}."""

    def __init__(self, answers: dict[str, str | Callable[[str], str]]) -> None:
        self.answers = answers
        self.calls = 0

    def complete(
        self, messages: list[dict[str, str]], *, state_key: str | None = None, purpose: str = ""
    ) -> Reply:
        self.calls += 1
        prompt = messages[-1]["content"]
        question = prompt.split("\n", 1)[0].removeprefix("Criterion: ")
        answer = self.answers[question]
        item = _item_of(prompt)
        return Reply(answer(item) if callable(answer) else answer, Usage())


def _item_of(prompt: str) -> str:
    return prompt.split("Text:\n", 1)[1].rsplit("\n\nReply", 1)[0]


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the shipped judges example to change."""
    dest = tmp_path / "judges"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", ".metaexp"))
    return dest


def edit_yaml(path: Path, **changes: object) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


# ------------------------------------------------------------------ kappa


def test_kappa_of_perfect_agreement_is_one() -> None:
    labels = [True, False, True, True, False]
    assert cohen_kappa(labels, labels) == pytest.approx(1.0)


def test_kappa_of_chance_agreement_is_zero() -> None:
    # independent raters: each says yes to half, agreeing on half of the items
    human = [True, True, False, False] * 25
    judged = [True, False, True, False] * 25
    assert cohen_kappa(human, judged) == pytest.approx(0.0)


def test_kappa_of_the_textbook_example() -> None:
    # 50 items: both yes 20, A yes B no 5, A no B yes 10, both no 15; p_o 0.7, p_e 0.5
    human = [True] * 20 + [True] * 5 + [False] * 10 + [False] * 15
    judged = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    assert cohen_kappa(human, judged) == pytest.approx(0.4)


def test_kappa_below_chance_is_negative() -> None:
    assert cohen_kappa([True, False, True, False], [False, True, False, True]) == pytest.approx(-1.0)


def test_kappa_is_undefined_when_expected_agreement_is_one_or_no_items() -> None:
    assert cohen_kappa([True] * 6, [True] * 6) is None  # a constant judge cannot be told from a good one
    assert cohen_kappa([False] * 3, [False] * 3) is None
    assert cohen_kappa([], []) is None
    assert cohen_kappa([True] * 4, [True, True, True, False]) == pytest.approx(0.0)  # one-sided: defined
    with pytest.raises(ValueError, match="3 human labels but 2"):
        cohen_kappa([True, False, True], [True, False])


# ------------------------------------------------------------------ rubric and labels files


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"modle": "x"}, "modle: unknown key"),
        ({"criteria": [{"id": "a", "question": "q?", "wieght": 2}]}, "criteria[0].wieght: unknown key"),
        ({"criteria": [{"id": "a", "question": "q?", "weight": 0}]}, "criteria[0].weight: "),
        ({"criteria": [{"id": "a", "question": "q?"}, {"id": "a", "question": "r?"}]}, "repeated: a"),
        ({"criteria": [{"id": "Bad id", "question": "q?"}]}, "criteria[0].id: "),
        ({"criteria": []}, "criteria: "),
        ({"min_agreement": 1.5}, "min_agreement: "),
    ],
)
def test_rubric_errors_name_the_file_and_the_key(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    data = {"model": "m", "criteria": [{"id": "a", "question": "q?"}], **change}
    path = tmp_path / "rubric.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(JudgeError, match=r"rubric\.yaml") as caught:
        load_rubric(path)
    assert message in str(caught.value)


def test_missing_model_and_missing_file_are_named(tmp_path: Path) -> None:
    path = tmp_path / "rubric.yaml"
    path.write_text(yaml.safe_dump({"criteria": [{"id": "a", "question": "q?"}]}))
    with pytest.raises(JudgeError, match="model: required key is missing"):
        load_rubric(path)
    with pytest.raises(JudgeError, match=r"nope\.yaml: file not found"):
        load_rubric(tmp_path / "nope.yaml")


def test_labels_errors_name_the_item_and_the_key(tmp_path: Path) -> None:
    rubric = make_rubric()
    path = tmp_path / "labels.yaml"
    path.write_text(
        yaml.safe_dump([{"item": "x", "labels": {"short": True}}, {"item": "y", "labels": {"shrot": True}}])
    )
    with pytest.raises(JudgeError, match=r"labels.yaml: \[1\].labels.shrot: not a criterion"):
        load_labels(path, rubric)
    path.write_text(yaml.safe_dump([{"item": "x", "labels": {"short": "yes"}}]))
    with pytest.raises(JudgeError, match=r"\[0\].labels.short: "):
        load_labels(path, rubric)
    path.write_text(yaml.safe_dump([{"item": "x", "lables": {"short": True}}]))
    with pytest.raises(JudgeError, match=r"\[0\].lables: unknown key"):
        load_labels(path, rubric)


def test_labels_may_be_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"item": "a", "labels": {"short": true}}\n\n{"item": "b", "labels": {"number": false}}\n'
    )
    assert [row.item for row in load_labels(path, make_rubric())] == ["a", "b"]


# ------------------------------------------------------------------ answers, verdicts and scores


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("PASS", True),
        ("FAIL", False),
        ("pass", True),
        ("Fail.", False),
        ("**PASS**", True),
        ("`FAIL`\n", False),
        ("Answer: PASS", True),
        ("Verdict - FAIL (14 words)", False),
        ("FAIL: the headline has 14 words", False),
        ("It has 9 words.\n\nPASS", True),
        ("PASS. It does not FAIL", None),  # first and last word disagree
        ("FAIL, though it could PASS", None),
        ("YES", None),
        ("", None),
        ("PASSED", None),
        ("I cannot judge this.", None),
    ],
)
def test_parse_answer_is_strict_about_the_word_and_lenient_about_markup(
    reply: str, verdict: bool | None
) -> None:
    assert parse_answer(reply) is verdict


def test_judge_counts_unclear_answers_as_fail_and_reports_them(caplog: pytest.LogCaptureFixture) -> None:
    client = ScriptedClient(
        {"Is it short?": " Pass ", "Has it a number?": "maybe", "Does it name someone?": "FAIL"}
    )
    with caplog.at_level(logging.WARNING, logger="metaexp.judges"):
        verdicts = judge(make_rubric(), "Three cats", client)
    assert verdicts == {"short": True, "number": False, "named": False}
    assert client.calls == 3
    assert "judge number: unclear answer 'maybe' counted as FAIL" in caplog.text
    assert "short" not in caplog.text


def test_score_is_the_weighted_pass_rate() -> None:
    rubric = make_rubric()  # weights short 2, number 1, named 1
    assert score({"short": True, "number": False, "named": False}, rubric) == pytest.approx(0.5)
    assert score({"short": False, "number": True, "named": True}, rubric) == pytest.approx(0.5)
    assert score({"short": True, "number": True, "named": False}, rubric) == pytest.approx(0.75)
    assert score(dict.fromkeys(("short", "number", "named"), True), rubric) == 1.0
    assert score(dict.fromkeys(("short", "number", "named"), False), rubric) == 0.0
    with pytest.raises(JudgeError, match="no verdict for criterion named"):
        score({"short": True, "number": True}, rubric)


def test_validate_measures_agreement_per_criterion() -> None:
    rubric = make_rubric(min_agreement=0.5)
    labels = [
        Labelled(item=item, labels={"short": n < 2, "number": n % 2 == 0, "named": True})
        for n, item in enumerate(["a1", "b2", "c3", "d4"])
    ]
    client = ScriptedClient(
        {
            "Is it short?": lambda item: "PASS" if item in ("a1", "b2") else "FAIL",  # agrees on all four
            "Has it a number?": "PASS",  # says PASS to everything: right half the time, by chance
            "Does it name someone?": "PASS",  # humans and judge all PASS: kappa undefined
        }
    )
    report = validate(rubric, labels, client)
    by_id = {c.id: c for c in report.criteria}
    assert (by_id["short"].accuracy, by_id["short"].kappa, by_id["short"].ok) == (1.0, 1.0, True)
    assert (by_id["number"].accuracy, by_id["number"].kappa, by_id["number"].ok) == (0.5, 0.0, False)
    assert by_id["number"].table == {"pass_pass": 2, "pass_fail": 0, "fail_pass": 2, "fail_fail": 0}
    assert (by_id["named"].kappa, by_id["named"].ok) == (None, False)
    assert not report.ok and report.n == 12 and report.accuracy == pytest.approx(10 / 12)
    assert len(report.disagreements) == 2 and report.answers == {"replayed": 0, "live": 12}


# ------------------------------------------------------------------ trust: the validation report


def test_check_validated_refuses_without_a_passing_report_for_this_rubric(example: Path) -> None:
    rubric = load_rubric(example / "rubric.yaml")
    assert check_validated(rubric)["ok"] is True
    with pytest.raises(JudgesRefused, match="no `validated:` report"):
        check_validated(rubric.model_copy(update={"validated": None}))
    with pytest.raises(JudgesRefused, match="made for another judge"):
        check_validated(rubric.model_copy(update={"model": "gpt-5-mini"}))
    with pytest.raises(JudgesRefused, match=r"kappa 0\.703 is below min_agreement 0\.75"):
        check_validated(rubric.model_copy(update={"min_agreement": 0.75}))
    (example / "validation.json").write_text("{not json")
    with pytest.raises(JudgesRefused, match="not a validation report"):
        check_validated(rubric)


# ------------------------------------------------------------------ metaexp judges validate


def test_cli_validate_from_the_recording_reproduces_the_shipped_report(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(example)
    out = example / "again.json"
    argv = ["judges", "validate", "rubric.yaml", "labels.yaml", "--replay", "judges.jsonl", "--out", str(out)]
    assert cli(argv) == 0
    table = capsys.readouterr().out
    assert "criterion" in table and "REFUSED" not in table
    assert [line.split()[-1] for line in table.splitlines()[1:5]] == ["ok"] * 4
    assert json.loads(out.read_text()) == json.loads((EXAMPLE / "validation.json").read_text())


def test_cli_validate_exits_1_when_a_criterion_is_below_the_threshold(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(example)
    edit_yaml(example / "rubric.yaml", min_agreement=0.8)
    argv = ["judges", "validate", "rubric.yaml", "labels.yaml", "--replay", "judges.jsonl", "--out", "v.json"]
    assert cli(argv) == 1
    table = capsys.readouterr().out
    assert "no_clickbait" in table and "REFUSED (kappa below 0.8)" in table
    assert json.loads((example / "v.json").read_text())["ok"] is False


def test_cli_validate_names_a_bad_rubric(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_yaml(example / "rubric.yaml", threshold=0.7)
    assert cli(["judges", "validate", str(example / "rubric.yaml"), str(example / "labels.yaml")]) == 1
    assert "threshold: unknown key" in capsys.readouterr().err


# ------------------------------------------------------------------ the shipped example


def run_harness(root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["JUDGES_REPLAY"] = "judges.jsonl"
    return subprocess.run(
        [sys.executable, "evaluate.py"], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )


def test_harness_scores_the_headlines_offline(example: Path) -> None:
    proc = run_harness(example)
    assert proc.returncode == 0, proc.stderr
    block = proc.stdout.split("---\n", 1)[1]
    metrics = dict(line.split(": ") for line in block.splitlines())
    assert metrics["pass_rate"] == "0.480000" and metrics["n_items"] == "5"


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda root: (root / "validation.json").unlink(), "validation.json: validation report not found"),
        (lambda root: edit_yaml(root / "rubric.yaml", min_agreement=0.9), "below min_agreement 0.9"),
        (lambda root: edit_yaml(root / "rubric.yaml", model="gpt-5-mini"), "made for another judge"),
    ],
)
def test_harness_refuses_unvalidated_judges(
    example: Path, spoil: Callable[[Path], None], reason: str
) -> None:
    spoil(example)
    proc = run_harness(example)
    assert proc.returncode == 2
    assert "evaluate.py: refused:" in proc.stderr and reason in proc.stderr
    assert "pass_rate" not in proc.stdout


def load_stand_in() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_recording", EXAMPLE / "make_recording.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_recording_is_the_rule_based_stand_in() -> None:
    stand_in = load_stand_in()
    rubric = load_rubric(EXAMPLE / "rubric.yaml")
    by_question = {c.question: c for c in rubric.criteria}
    lines = [json.loads(line) for line in (EXAMPLE / "judges.jsonl").read_text().splitlines()]
    assert lines and {line["request"]["model"] for line in lines} == {"rule-based-stand-in"}
    for line in lines:
        prompt = line["request"]["messages"][-1]["content"]
        assert line["response"]["content"] == stand_in.answer(
            prompt, {q: c.id for q, c in by_question.items()}
        )
        question, item = prompt.split("\n", 1)[0].removeprefix("Criterion: "), _item_of(prompt)
        # keyed by model, question and item: another model's answers never replay for this one
        assert line["state_key"] == state_key("rule-based-stand-in", by_question[question], item)
        assert line["state_key"] != state_key("gpt-5-mini", by_question[question], item)


def test_the_stand_in_answers_over_http_through_the_client() -> None:
    stand_in = load_stand_in()
    rubric = load_rubric(EXAMPLE / "rubric.yaml")
    server = stand_in.serve(0, {c.question: c.id for c in rubric.criteria})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = client_for(rubric, base_url=f"http://127.0.0.1:{server.server_port}/v1")
        verdicts = judge(rubric, "NASA delays Artemis II moon launch to September 2026", client)
    finally:
        server.shutdown()
    assert verdicts == {"short": True, "number": True, "no_clickbait": True, "names_subject": True}
