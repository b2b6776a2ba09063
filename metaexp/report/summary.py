"""What a run achieved: the summary figures and the text block of `metaexp report` and `metaexp status`.

Direction is folded into one sign up front, so every comparison below reads
"higher score is better".
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from metaexp.errors import SpecError
from metaexp.record.records import ExperimentRecord, Status

__all__ = ["Summary", "format_summary", "summarize"]

TABLE_CHARS = 60  # a kept change's description in the text table, characters
JUDGED = (Status.KEEP, Status.DISCARD, Status.EXPLORE, Status.ESCAPE)  # tries with a value


# ---------------------------------------------------------------------------
# Summary


@dataclass(frozen=True)
class Summary:
    """Figures for `metaexp report` and `metaexp status`.

    The baseline is the first record (by n) with a value; it is neither a
    candidate for the keep rate nor a gain. `keep_rate` = keeps / judged, where
    judged = keep + discard + explore + escape after the baseline: of the tries
    that produced a value, the share kept on merit. Crashes, timeouts, tries
    that never ran and migrants (copies, not tries) are left out (see `counts`).
    `best` is the best kept value, the baseline included. Each gain is measured
    against the value of the commit the kept change replaced (its parent, so
    interleaved islands each count against their own lineage), positive =
    better; a population run can keep a child worse than its parent.
    """

    total: int
    counts: dict[str, int]  # every Status, zeros included
    ran: int  # records whose harness ran
    judged: int  # tries in JUDGED with a value, the baseline excepted
    keep_rate: float  # 0.0 when nothing was judged yet
    baseline: float | None
    best: float | None
    best_n: int | None
    best_commit: str | None
    gains: list[tuple[int, str, float, str]]  # (n, commit[:7], gain, description)
    arms: dict[str, dict[str, float]] | None = None  # hybrid: per arm, proposals/evaluations/kept/gain
    models: dict[str, dict[str, float]] | None = None  # llm: the same per model, and its cost

    @property
    def improvement(self) -> float | None:
        """Baseline to best in the improving direction (never negative)."""
        if self.baseline is None or self.best is None:
            return None
        return abs(self.best - self.baseline)


def _sign(direction: str) -> float:
    if direction == "minimize":
        return -1.0
    if direction == "maximize":
        return 1.0
    raise SpecError(f"direction must be 'minimize' or 'maximize', got {direction!r}")


def _valued(records: list[ExperimentRecord]) -> list[tuple[ExperimentRecord, float]]:
    """Records with a finite value, in order of n; the first one is the baseline."""
    ordered = sorted(records, key=lambda r: r.n)
    return [(r, r.value) for r in ordered if r.value is not None and math.isfinite(r.value)]


def _running_best(records: list[ExperimentRecord], sign: float) -> list[tuple[ExperimentRecord, float]]:
    """Each kept record (and the baseline) that set a new best, in order of n."""
    steps: list[tuple[ExperimentRecord, float]] = []
    for i, (rec, value) in enumerate(_valued(records)):
        if i > 0 and rec.status is not Status.KEEP:
            continue
        if not steps or sign * value > sign * steps[-1][1]:
            steps.append((rec, value))
    return steps


def _gains(records: list[ExperimentRecord], sign: float) -> Iterator[tuple[int, str, float, str]]:
    """Each kept change against the value of the commit it replaced."""
    by_commit: dict[str | None, float] = {}
    head = 0.0  # set by the baseline before any kept change reads it
    for i, (rec, value) in enumerate(_valued(records)):
        if i > 0 and rec.status is Status.KEEP:
            replaced = by_commit.get(rec.parent, head)
            yield rec.n, (rec.commit or "")[:7], sign * (value - replaced), rec.description
        if i == 0 or rec.status.accepted:
            by_commit[rec.commit] = value
            head = value


def summarize(records: list[ExperimentRecord], direction: str, metric: str) -> Summary:
    """The figures of a run; `record.value` is the decision metric named `metric`."""
    sign = _sign(direction)
    counts = {str(s): 0 for s in Status}
    for rec in records:
        counts[str(rec.status)] += 1
    valued = _valued(records)
    judged = [r for r, _ in valued[1:] if r.status in JUDGED]
    kept = sum(r.status is Status.KEEP for r in judged)
    steps = _running_best(records, sign)
    best, best_value = steps[-1] if steps else (None, None)
    return Summary(
        total=len(records),
        counts=counts,
        ran=sum(r.status.harness_ran for r in records),
        judged=len(judged),
        keep_rate=kept / len(judged) if judged else 0.0,
        baseline=valued[0][1] if valued else None,
        best=best_value,
        best_n=best.n if best else None,
        best_commit=best.commit if best else None,
        gains=(gains := list(_gains(records, sign))),
        arms=_by(records, gains, "arm"),
        models=_by(records, gains, "model"),
    )


def _by(records: list[ExperimentRecord], gains: list[tuple[int, str, float, str]], key: str) -> dict | None:
    """Per value of extra[key] (a hybrid's arm, the model that proposed): how many proposals and
    harness runs, what was kept and gained, what it cost."""
    gain_of = {n: g for n, _, g, _ in gains}
    rows: dict[str, dict[str, float]] = {}
    for rec in records:
        name = rec.extra.get(key)
        if not name:
            continue
        row = rows.setdefault(name, {"proposals": 0, "evaluations": 0, "kept": 0, "gain": 0.0, "cost": 0.0})
        row["proposals"] += 1
        if rec.status.harness_ran:
            row["evaluations"] += max(1, len(rec.extra.get("runs", [])))
        row["kept"] += rec.status is Status.KEEP
        row["gain"] += gain_of.get(rec.n, 0.0)
        row["cost"] += float(rec.usage.get("cost_usd", 0.0))
    return rows or None


# ---------------------------------------------------------------------------
# Text


def _short(text: str, limit: int) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _decimals(values: list[float], digits: int = 4) -> int:
    """Decimal places that show the largest of `values` to `digits` significant digits."""
    largest = max((abs(v) for v in values), default=0.0)
    if largest == 0 or not math.isfinite(largest):
        return digits
    return min(12, max(0, digits - 1 - math.floor(math.log10(largest))))


def _gain_table(gains: list[tuple[int, str, float, str]]) -> list[str]:
    places = _decimals([g for _, _, g, _ in gains])  # one column, one precision
    rows = [("n", "commit", "gain", "description")]
    rows += [(str(n), c, f"{g:+.{places}f}", _short(d, TABLE_CHARS)) for n, c, g, d in gains]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [f"  {n:>{widths[0]}}  {c:<{widths[1]}}  {g:>{widths[2]}}  {d}".rstrip() for n, c, g, d in rows]


def format_summary(summary: Summary, metric: str) -> str:
    """A human block: counts, keep rate, baseline → best, and the kept changes with their gains."""
    s = summary
    counts = ", ".join(f"{k} {v}" for k, v in s.counts.items() if v)
    lines = [
        f"experiments  {s.total} ({s.ran} ran)" + (f": {counts}" if counts else ""),
        f"keep rate    {s.keep_rate:.1%} ({len(s.gains)} kept of {s.judged} judged after the baseline)",
    ]
    if s.baseline is None or s.best is None:
        return "\n".join([*lines, f"{metric:<12} no value yet"])
    improvement = s.improvement or 0.0
    pct = f" ({improvement / abs(s.baseline):.2%})" if s.baseline else ""
    lines += [
        f"{metric:<12} {s.baseline:.6g} (baseline) → {s.best:.6g}"
        f" (best, #{s.best_n} {(s.best_commit or '?')[:7]})",
        f"improvement  {improvement:.6g}{pct}",
    ]
    if s.arms:
        total = sum(a["evaluations"] for a in s.arms.values()) or 1
        lines += ["", "arms (hybrid): proposals, harness runs (share), kept, summed gain"]
        for arm, a in sorted(s.arms.items()):
            share = a["evaluations"] / total
            lines.append(
                f"  {arm:<8} {a['proposals']:>4.0f} proposals  {a['evaluations']:>5.0f} runs ({share:.0%})"
                f"  {a['kept']:>3.0f} kept  gain {a['gain']:+.6g}"
            )
    if s.models and len(s.models) > 1:
        lines += ["", "models: proposals, kept, summed gain, cost"]
        for model, m in sorted(s.models.items()):
            lines.append(
                f"  {model:<20} {m['proposals']:>4.0f} proposals  {m['kept']:>3.0f} kept"
                f"  gain {m['gain']:+.6g}  ${m['cost']:.4f}"
            )
    if s.gains:
        lines += ["", "kept changes (gain > 0 is better):", *_gain_table(s.gains)]
    return "\n".join(lines)
