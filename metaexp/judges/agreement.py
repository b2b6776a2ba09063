"""Agreement with the humans: Cohen's kappa, the validation report, and check_validated (trust)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from metaexp.errors import MetaexpError
from metaexp.judges.asking import Completer, Verdict, ask
from metaexp.judges.rubric import Labelled, Rubric


class JudgesRefused(MetaexpError):
    """The judges are not validated for this rubric, so their scores are not to be trusted."""


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
