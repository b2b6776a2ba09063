"""metaexp judges validate RUBRIC LABELS: how well the LLM judges agree with human labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from metaexp.judges import Report, client_for, load_labels, load_rubric, validate

SHOWN_DISAGREEMENTS = 20  # the rest are in the report


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judges", help="synthetic judges: check them against human labels")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    v = actions.add_parser(
        "validate",
        help="agreement (accuracy, Cohen's kappa) of each criterion's judge with human labels; "
        "exit 1 if any criterion is below the rubric's min_agreement",
    )
    v.add_argument("rubric", help="the rubric YAML")
    v.add_argument("labels", help="human labels: a YAML list or JSONL of {item:, labels: {criterion: bool}}")
    v.add_argument(
        "--replay", type=Path, metavar="FILE", help="answer from this recording (llm.jsonl format) first"
    )
    v.add_argument("--record", type=Path, metavar="FILE", help="append every exchange to this file")
    v.add_argument(
        "--out",
        type=Path,
        metavar="REPORT.json",
        help="write the report JSON here (the rubric's validated: path)",
    )


def run(args: argparse.Namespace) -> int:
    rubric = load_rubric(args.rubric)
    labels = load_labels(args.labels, rubric)
    report = validate(rubric, labels, client_for(rubric, replay=args.replay, record=args.record), args.labels)
    print(format_report(report))
    if args.out:
        args.out.write_text(report.to_json())
        print(f"\nwrote {args.out}")
    return 0 if report.ok else 1


def format_report(report: Report) -> str:
    lines = [f"{'criterion':<20} {'n':>4} {'accuracy':>9} {'kappa':>7}  verdict"]
    for c in report.criteria:
        verdict = "ok" if c.ok else f"REFUSED ({_why(c.n, c.kappa, report.min_agreement)})"
        unclear = f", {c.unclear} unclear answer(s)" if c.unclear else ""
        lines.append(f"{c.id:<20} {c.n:>4} {c.accuracy:>9.3f} {_kappa(c.kappa):>7}  {verdict}{unclear}")
    lines.append(f"{'overall':<20} {report.n:>4} {report.accuracy:>9.3f} {_kappa(report.kappa):>7}")
    answers = report.answers
    lines.append(f"answers: {answers['replayed']} replayed, {answers['live']} live")
    if report.disagreements:
        lines.append(f"\n{len(report.disagreements)} disagreement(s) (human -> judge):")
        for d in report.disagreements[:SHOWN_DISAGREEMENTS]:
            lines.append(f"  {d['criterion']}: {_pf(d['human'])} -> {_pf(d['judge'])}  {d['item']!r}")
    return "\n".join(lines)


def _why(n: int, kappa: float | None, threshold: float) -> str:
    if n == 0:
        return "no labels"
    if kappa is None:
        return "kappa undefined: humans and judge gave every item the same label"
    return f"kappa below {threshold:g}"


def _kappa(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _pf(value: bool) -> str:
    return "PASS" if value else "FAIL"
