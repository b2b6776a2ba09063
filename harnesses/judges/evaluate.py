"""Immutable harness: synthetic judges score headlines.txt; prints pass_rate in a `---` block.

Each headline is judged on every criterion of rubric.yaml (one PASS/FAIL
question each, metaexp.judges); pass_rate is the mean weighted pass rate:

    ---
    pass_rate: 0.480000
    n_items: 5

It refuses (exit 2, the reason on stderr) unless the rubric's validation
report exists, was made for this rubric's model and questions, and every
criterion reaches min_agreement: judges are validated before they are trusted.

Environment:
  JUDGES_REPLAY   a recording (llm.jsonl format) that answers first, by (criterion, headline);
                  a headline it lacks is asked of the rubric's endpoint
  JUDGES_RECORD   append every exchange to this file
  the variable named by the rubric's api_key_env (passed with harness.pass_env) for a live model
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from metaexp.judges import (
    JudgeError,
    JudgesRefused,
    Rubric,
    check_validated,
    client_for,
    load_rubric,
    score,
    verdicts,
)
from metaexp.llm import LLMClient, LLMError

RUBRIC = "rubric.yaml"
TARGET = "headlines.txt"
N_HEADLINES = 5  # one per story: dropping the hard ones must not raise the score


def read_headlines(path: str) -> list[str]:
    lines = Path(path).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def judge_all(rubric: Rubric, headlines: list[str], client: LLMClient) -> tuple[list[float], dict[str, int]]:
    """Each headline's weighted pass rate, and how many headlines pass each criterion."""
    scores, passes, replayed, asked = [], {c.id: 0 for c in rubric.criteria}, 0, 0
    for headline in headlines:
        found = verdicts(rubric, headline, client)
        for v in found:
            passes[v.criterion] += v.passed
            replayed, asked = replayed + v.replayed, asked + 1
            if not v.clear:
                print(f"unclear answer for {v.criterion}, counted as FAIL: {v.answer!r}", file=sys.stderr)
        scores.append(score({v.criterion: v.passed for v in found}, rubric))
    live = asked - replayed
    print(f"judge {rubric.model}: {replayed} of {asked} answers replayed, {live} live", file=sys.stderr)
    return scores, passes


def main() -> int:
    try:
        rubric = load_rubric(RUBRIC)
        check_validated(rubric)
    except (JudgeError, JudgesRefused) as exc:
        print(f"evaluate.py: refused: {exc}", file=sys.stderr)
        return 2
    headlines = read_headlines(TARGET)
    if len(headlines) != N_HEADLINES:
        print(f"evaluate.py: {TARGET} has {len(headlines)} headlines; keep {N_HEADLINES}", file=sys.stderr)
        return 1
    client = client_for(rubric, replay=env_path("JUDGES_REPLAY"), record=env_path("JUDGES_RECORD"))
    try:
        scores, passes = judge_all(rubric, headlines, client)
    except LLMError as exc:
        print(
            f"evaluate.py: the judge gave no answer: {exc}\n  (a headline not in JUDGES_REPLAY is asked "
            "live: serve the stand-in with `python make_recording.py --serve`)",
            file=sys.stderr,
        )
        return 1
    print("---")
    print(f"pass_rate: {sum(scores) / len(scores):.6f}")
    print(f"n_items: {len(scores)}")
    for cid, n in passes.items():
        print(f"pass_{cid}: {n / len(scores):.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
