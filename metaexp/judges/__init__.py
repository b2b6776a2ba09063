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
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from metaexp.errors import MetaexpError
from metaexp.llm import LLMClient, Reply

log = logging.getLogger(__name__)

SYSTEM = (
    "You are a careful evaluator. You get one yes/no criterion and one text. "
    "Reply with exactly one word: PASS if the text meets the criterion, FAIL if it does not."
)


class Completer(Protocol):
    """What a judge needs of a client: LLMClient, or a scripted stand-in in tests."""

    def complete(
        self, messages: list[dict[str, str]], *, state_key: str | None = None, purpose: str = ""
    ) -> Reply: ...


class JudgeError(MetaexpError):
    """A rubric or labels file is malformed."""


class JudgesRefused(MetaexpError):
    """The judges are not validated for this rubric, so their scores are not to be trusted."""


# ------------------------------------------------------------------ rubric and labels


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Criterion(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="short name, e.g. no_clickbait")
    question: str = Field(min_length=1, description="a yes/no question the judge answers PASS or FAIL")
    weight: float = Field(1.0, gt=0, description="its share of the score")


class Rubric(_Strict):
    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(0.0, ge=0, le=2)
    min_agreement: float = Field(0.6, ge=0, le=1, description="Cohen's kappa every criterion must reach")
    validated: str | None = Field(None, description="the validation report, relative to the rubric")
    criteria: list[Criterion] = Field(min_length=1)
    path: Path = Field(Path("rubric.yaml"), exclude=True)

    @model_validator(mode="after")
    def _unique_ids(self) -> Rubric:
        ids = [c.id for c in self.criteria]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"criterion ids must be unique; repeated: {', '.join(twice)}")
        return self

    def fingerprint(self) -> str:
        """What a validation is valid for: the judge model and the questions (not weights, threshold)."""
        judged = {
            "model": self.model,
            "temperature": self.temperature,
            "criteria": [[c.id, c.question] for c in self.criteria],
        }
        return hashlib.sha256(json.dumps(judged, sort_keys=True).encode()).hexdigest()


class Labelled(_Strict):
    item: str = Field(min_length=1)
    labels: dict[str, StrictBool] = Field(min_length=1)


def load_rubric(path: str | Path) -> Rubric:
    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise JudgeError(f"{path}: must be a mapping (model:, criteria:, min_agreement:, ...)")
    try:
        return Rubric.model_validate({**data, "path": path})
    except ValidationError as exc:
        raise JudgeError(_problems(path, exc)) from None


def load_labels(path: str | Path, rubric: Rubric) -> list[Labelled]:
    """A YAML list, or JSONL, of {item: text, labels: {criterion_id: true/false}}."""
    path = Path(path)
    if path.suffix == ".jsonl":
        data: Any = [json.loads(line) for line in _read(path).splitlines() if line.strip()]
    else:
        data = _read_yaml(path)
    if not isinstance(data, list) or not data:
        raise JudgeError(f"{path}: must be a non-empty list of {{item: ..., labels: {{...}}}}")
    known = {c.id for c in rubric.criteria}
    rows = []
    for i, raw in enumerate(data):
        try:
            row = Labelled.model_validate(raw)
        except ValidationError as exc:
            raise JudgeError(_problems(path, exc, prefix=f"[{i}]")) from None
        unknown = sorted(set(row.labels) - known)
        if unknown:
            raise JudgeError(
                f"{path}: [{i}].labels.{unknown[0]}: not a criterion of {rubric.path} "
                f"(criteria: {', '.join(sorted(known))})"
            )
        rows.append(row)
    return rows


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise JudgeError(f"{path}: file not found") from None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(_read(path))
    except yaml.YAMLError as exc:
        raise JudgeError(f"{path}: not valid YAML: {exc}") from None


def _problems(path: Path, exc: ValidationError, prefix: str = "") -> str:
    lines = [f"{path}: {exc.error_count()} problem(s):"]
    for err in exc.errors():
        where = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        where = where.lstrip(".") or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key (check its spelling)")
        elif err["type"] == "missing":
            lines.append(f"  {where}: required key is missing")
        else:
            lines.append(f"  {where}: {err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})")
    return "\n".join(lines)


# ------------------------------------------------------------------ judging


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


# ------------------------------------------------------------------ agreement


def cohen_kappa(human: list[bool], judged: list[bool]) -> float | None:
    """Agreement beyond chance of two raters on binary labels; None when it is undefined:
    no items, or both raters gave every item the same single label (expected agreement 1)."""
    if len(human) != len(judged):
        raise ValueError(f"cohen_kappa: {len(human)} human labels but {len(judged)} judged labels")
    n = len(human)
    if n == 0:
        return None
    observed = sum(h == j for h, j in zip(human, judged, strict=True)) / n
    p_human, p_judged = sum(human) / n, sum(judged) / n
    expected = p_human * p_judged + (1 - p_human) * (1 - p_judged)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1 - expected)


@dataclass(frozen=True)
class CriterionReport:
    id: str
    n: int
    accuracy: float
    kappa: float | None  # None: undefined, the labels cannot tell this judge from a constant
    ok: bool
    unclear: int  # answers that were neither PASS nor FAIL (counted as FAIL)
    table: dict[str, int]  # human_judge counts: pass_pass, pass_fail, fail_pass, fail_fail


@dataclass(frozen=True)
class Report:
    rubric: str
    labels: str
    fingerprint: str  # Rubric.fingerprint() of the rubric it validated
    min_agreement: float
    ok: bool
    n: int
    accuracy: float
    kappa: float | None  # pooled over every (item, criterion) pair
    criteria: list[CriterionReport]
    answers: dict[str, int]  # replayed / live
    disagreements: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def validate(
    rubric: Rubric, labels: list[Labelled], client: Completer, labels_path: str | Path = "labels"
) -> Report:
    """Ask the judge about every labelled item; compare with the humans, criterion by criterion."""
    pairs: dict[str, list[tuple[str, bool, Verdict]]] = {c.id: [] for c in rubric.criteria}
    for row in labels:
        for c in rubric.criteria:
            if c.id in row.labels:
                pairs[c.id].append((row.item, row.labels[c.id], ask(rubric, c, row.item, client)))
    reports = [_criterion_report(cid, got, rubric.min_agreement) for cid, got in pairs.items()]
    everything = [pair for got in pairs.values() for pair in got]
    replayed = sum(v.replayed for _, _, v in everything)
    return Report(
        rubric=str(rubric.path),
        labels=str(labels_path),
        fingerprint=rubric.fingerprint(),
        min_agreement=rubric.min_agreement,
        ok=all(r.ok for r in reports),
        n=len(everything),
        accuracy=_accuracy(everything),
        kappa=_kappa(everything),
        criteria=reports,
        answers={"replayed": replayed, "live": len(everything) - replayed},
        disagreements=[
            {"item": item, "criterion": v.criterion, "human": human, "judge": v.passed, "answer": v.answer}
            for item, human, v in everything
            if human != v.passed
        ],
    )


def _criterion_report(cid: str, got: list[tuple[str, bool, Verdict]], threshold: float) -> CriterionReport:
    kappa = _kappa(got)
    outcomes = [(_pf(human), _pf(v.passed)) for _, human, v in got]
    table = {f"{h}_{j}": outcomes.count((h, j)) for h in ("pass", "fail") for j in ("pass", "fail")}
    ok = kappa is not None and kappa >= threshold
    unclear = sum(not v.clear for _, _, v in got)
    return CriterionReport(cid, len(got), _accuracy(got), kappa, ok, unclear, table)


def _pf(value: bool) -> str:
    return "pass" if value else "fail"


def _accuracy(got: list[tuple[str, bool, Verdict]]) -> float:
    return sum(human == v.passed for _, human, v in got) / len(got) if got else 0.0


def _kappa(got: list[tuple[str, bool, Verdict]]) -> float | None:
    return cohen_kappa([human for _, human, _ in got], [v.passed for _, _, v in got])


# ------------------------------------------------------------------ trust


def check_validated(rubric: Rubric) -> dict[str, Any]:
    """The rubric's validation report, if it was made for this rubric and every criterion reaches
    min_agreement; else JudgesRefused saying why. Thresholds are re-checked here, not trusted."""
    if rubric.validated is None:
        raise JudgesRefused(
            f"{rubric.path}: no `validated:` report; judges are trusted only after "
            f"`metaexp judges validate {rubric.path} LABELS --out REPORT.json`"
        )
    path = rubric.path.parent / rubric.validated
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise JudgesRefused(
            f"{path}: validation report not found; run `metaexp judges validate "
            f"{rubric.path} LABELS --out {path}` first"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise JudgesRefused(f"{path}: not a validation report ({exc})") from None
    if not isinstance(report, dict) or report.get("fingerprint") != rubric.fingerprint():
        raise JudgesRefused(
            f"{path}: made for another judge (the model or a question in {rubric.path} "
            "changed since); validate again"
        )
    kappas = {c.get("id"): c.get("kappa") for c in report.get("criteria", []) if isinstance(c, dict)}
    for c in rubric.criteria:
        if c.id not in kappas:
            raise JudgesRefused(f"{path}: criterion {c.id} was never validated; validate again")
        kappa = kappas[c.id]
        if not isinstance(kappa, int | float) or kappa < rubric.min_agreement:
            shown = f"{kappa:.3f}" if isinstance(kappa, int | float) else "undefined"
            raise JudgesRefused(
                f"{path}: criterion {c.id}: kappa {shown} is below min_agreement "
                f"{rubric.min_agreement:g}; the judge disagrees with the humans"
            )
    return report
