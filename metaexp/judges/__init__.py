"""Synthetic judges: binary criteria asked of an LLM, validated against human labels.

A rubric (YAML) lists pass/fail criteria. `judge` asks the model one question
per criterion and item; `score` folds the verdicts into a weighted pass rate
in [0, 1]. `validate` measures how well the judge agrees with a human-labelled
set (accuracy and Cohen's kappa per criterion); a harness trusts the judge
only while `check_validated` finds a passing report made for this rubric.

One question per criterion, not one JSON reply for all: each answer is a
single word that parses without ambiguity, criteria cannot colour each other,
and a recording keyed by (model, criterion, item) survives adding or rewording
other criteria and the prompt around them.

rubric.py     the rubric and labels files: their models, loading, JudgeError
asking.py     the prompt, asking one criterion, parsing the answer, the score
agreement.py  Cohen's kappa, the validation report, check_validated (JudgesRefused)
"""

from __future__ import annotations

from metaexp.judges.agreement import (
    CriterionReport,
    JudgesRefused,
    Report,
    check_validated,
    cohen_kappa,
    validate,
)
from metaexp.judges.asking import (
    SYSTEM,
    Completer,
    Verdict,
    ask,
    client_for,
    judge,
    messages,
    parse_answer,
    score,
    state_key,
    verdicts,
)
from metaexp.judges.rubric import Criterion, JudgeError, Labelled, Rubric, load_labels, load_rubric

__all__ = [
    "SYSTEM",
    "Completer",
    "Criterion",
    "CriterionReport",
    "JudgeError",
    "JudgesRefused",
    "Labelled",
    "Report",
    "Rubric",
    "Verdict",
    "ask",
    "check_validated",
    "client_for",
    "cohen_kappa",
    "judge",
    "load_labels",
    "load_rubric",
    "messages",
    "parse_answer",
    "score",
    "state_key",
    "validate",
    "verdicts",
]
