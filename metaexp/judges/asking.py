"""Asking the judge: one PASS/FAIL question per criterion and item, the reply parsed, the score."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from metaexp.judges.rubric import Criterion, JudgeError, Rubric
from metaexp.llm import LLMClient, Reply

log = logging.getLogger("metaexp.judges")  # the package's name, as before the split; callers filter on it

SYSTEM = (
    "You are a careful evaluator. You get one yes/no criterion and one text. "
    "Reply with exactly one word: PASS if the text meets the criterion, FAIL if it does not."
)


class Completer(Protocol):
    """What a judge needs of a client: LLMClient, or a scripted stand-in in tests."""

    def complete(
        self, messages: list[dict[str, str]], *, state_key: str | None = None, purpose: str = ""
    ) -> Reply: ...


@dataclass(frozen=True)
class Verdict:
    criterion: str
    passed: bool  # an unclear answer counts as a fail
    answer: str  # the model's reply, verbatim
    clear: bool  # the reply was PASS or FAIL
    replayed: bool = False


def client_for(
    rubric: Rubric, *, replay: Path | None = None, record: Path | None = None, base_url: str | None = None
) -> LLMClient:
    """A recording answers by (model, criterion, item), whatever the prompt's wording; a miss asks
    the endpoint."""
    return LLMClient(
        model=rubric.model,
        base_url=base_url or rubric.base_url,
        api_key_env=rubric.api_key_env,
        temperature=rubric.temperature,
        timeout_s=60.0,
        record_path=record,
        replay_path=replay,
        replay_key="state",
        replay_miss="live",
    )


def state_key(model: str, criterion: Criterion, item: str) -> str:
    """A recorded answer is the model's answer to this question about this item, whatever the prompt."""
    return hashlib.sha256(f"{model}\n{criterion.id}\n{criterion.question}\n{item}".encode()).hexdigest()


def messages(criterion: Criterion, item: str) -> list[dict[str, str]]:
    user = f"Criterion: {criterion.question}\n\nText:\n{item}\n\nReply PASS or FAIL."
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def ask(rubric: Rubric, criterion: Criterion, item: str, client: Completer) -> Verdict:
    """One criterion of one item. Raises LLMError when the endpoint gives no reply at all."""
    key = state_key(rubric.model, criterion, item)
    reply = client.complete(messages(criterion, item), state_key=key, purpose=f"judge {criterion.id}")
    passed = parse_answer(reply.content)
    return Verdict(criterion.id, bool(passed), reply.content, passed is not None, reply.replayed)


def verdicts(rubric: Rubric, item: str, client: Completer) -> list[Verdict]:
    return [ask(rubric, c, item, client) for c in rubric.criteria]


def judge(rubric: Rubric, item: str, client: Completer) -> dict[str, bool]:
    """criterion id -> passed; an answer that is not PASS or FAIL is a fail, logged as a warning."""
    found = verdicts(rubric, item, client)
    for v in found:
        if not v.clear:
            log.warning("judge %s: unclear answer %r counted as FAIL for %r", v.criterion, v.answer, item)
    return {v.criterion: v.passed for v in found}


_LABEL = re.compile(r"^\s*(answer|verdict|result)\s*[:\-]", re.IGNORECASE)


def parse_answer(text: str) -> bool | None:
    """PASS -> True, FAIL -> False, else None. The verdict is the reply's first or last word
    (markup, case and a leading 'Answer:' aside); if those two disagree it is unclear."""
    words = re.findall(r"[A-Za-z]+", _LABEL.sub("", text))
    ends = {w.upper() for w in words[:1] + words[-1:]} & {"PASS", "FAIL"}
    return ends == {"PASS"} if len(ends) == 1 else None


def score(verdicts: dict[str, bool], rubric: Rubric) -> float:
    """Weighted pass rate in [0, 1]; a criterion without a verdict is an error, not a fail."""
    missing = [c.id for c in rubric.criteria if c.id not in verdicts]
    if missing:
        raise JudgeError(f"score: no verdict for criterion {', '.join(missing)}")
    total = sum(c.weight for c in rubric.criteria)
    return sum(c.weight for c in rubric.criteria if verdicts[c.id]) / total
