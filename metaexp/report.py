"""What a run achieved: summary figures, a text block, and the progress plot.

Everything here reads records and writes nothing but the PNG; `metaexp report`
and `metaexp status` call it. Direction is folded into one sign up front, so
every comparison below reads "higher score is better".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaexp.errors import SpecError
from metaexp.records import ExperimentRecord, Status

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Summary", "format_summary", "plot_progress", "summarize"]

LABEL_CHARS = 30  # a kept point's label on the plot, characters
TABLE_CHARS = 60  # a kept change's description in the text table, characters
DPI = 120  # plot resolution, dots per inch
FIGSIZE = (13.0, 6.5)  # plot size, inches
JUDGED = (Status.KEEP, Status.DISCARD, Status.EXPLORE)  # outcomes that count toward keep rate
OUTLIER_FENCE = 3.0  # a value this many IQRs beyond the quartiles may be clipped off the plot


# ---------------------------------------------------------------------------
# Summary


@dataclass(frozen=True)
class Summary:
    """Figures for `metaexp report` and `metaexp status`.

    The baseline is the first record (by n) with a value; it is neither a
    candidate for the keep rate nor a gain. `keep_rate` = keeps / judged, where
    judged = keep + discard + explore after the baseline: of the candidates
    that produced a value, the share that beat the lineage. Crashes, timeouts
    and candidates that never ran are left out (see `counts`). `best` is the
    best kept value, the baseline included. Each gain is measured against the
    value of the commit the kept change replaced, positive = better.
    """

    total: int
    counts: dict[str, int]  # every Status, zeros included
    ran: int  # records whose harness ran
    judged: int  # keep + discard + explore with a value, the baseline excepted
    keep_rate: float  # 0.0 when nothing was judged yet
    baseline: float | None
    best: float | None
    best_n: int | None
    best_commit: str | None
    gains: list[tuple[int, str, float, str]]  # (n, commit[:7], gain, description)

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
    """Records with a value, in order of n; the first one is the baseline."""
    ordered = sorted(records, key=lambda r: r.n)
    return [(r, r.value) for r in ordered if r.value is not None]


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
        gains=list(_gains(records, sign)),
    )


# ---------------------------------------------------------------------------
# Text


def _short(text: str, limit: int) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _gain_table(gains: list[tuple[int, str, float, str]]) -> list[str]:
    rows = [("n", "commit", "gain", "description")]
    rows += [(str(n), c, f"{g:+.4g}", _short(d, TABLE_CHARS)) for n, c, g, d in gains]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [f"  {n:>{widths[0]}}  {c:<{widths[1]}}  {g:>{widths[2]}}  {d}".rstrip() for n, c, g, d in rows]


def format_summary(summary: Summary, metric: str) -> str:
    """A human block: counts, keep rate, baseline → best, and the kept changes."""
    s = summary
    counts = "  ".join(f"{k} {v}" for k, v in s.counts.items() if v)
    lines = [
        f"{s.total} experiments, {s.ran} ran" + (f":  {counts}" if counts else ""),
        f"keep rate  {s.keep_rate:.1%} ({len(s.gains)} kept of {s.judged} judged)",
    ]
    if s.baseline is None or s.best is None:
        lines.append(f"{metric}: no value yet")
        return "\n".join(lines)
    improvement = s.improvement or 0.0
    pct = f" ({improvement / abs(s.baseline):.2%})" if s.baseline else ""
    lines += [
        f"{metric}  baseline {s.baseline:.6g} → best {s.best:.6g}"
        f"  (#{s.best_n}, {(s.best_commit or '?')[:7]})",
        f"improvement  {improvement:.6g}{pct}",
    ]
    if s.gains:
        lines += ["", "kept changes (gain > 0 is better):", *_gain_table(s.gains)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Plot

GREY = "#b8b8b8"
EXPLORE = "#8da0cb"  # muted blue
GREEN = "#2ca25f"
RED = "#d7301f"


def _scatter(ax: Axes, records: list[ExperimentRecord], status: Status, **style: Any) -> None:
    points = [(r.n, value) for r, value in _valued(records) if r.status is status]
    if points:
        ax.scatter([n for n, _ in points], [v for _, v in points], **style)


def _plot_best(ax: Axes, records: list[ExperimentRecord], sign: float, last_n: int) -> None:
    steps = _running_best(records, sign)
    if not steps:
        return
    xs = [r.n for r, _ in steps] + [last_n]
    ys = [v for _, v in steps] + [steps[-1][1]]
    ax.step(xs, ys, where="post", color=GREEN, lw=2, alpha=0.6, zorder=2, label="Running best")


def _label_kept(ax: Axes, records: list[ExperimentRecord], sign: float) -> None:
    """Labels lean toward the worse side, where the points thin out."""
    up = sign < 0
    kept = [(r, v) for r, v in _valued(records) if r.status is Status.KEEP]
    for i, (rec, value) in enumerate(kept):
        offset = 6 + 9 * (i % 2)  # stagger neighbours, points
        ax.annotate(
            _short(rec.description, LABEL_CHARS),
            (rec.n, value),
            xytext=(4, offset if up else -offset),
            textcoords="offset points",
            rotation=30 if up else -30,
            rotation_mode="anchor",
            ha="left",
            va="bottom" if up else "top",
            fontsize=7,
            color="#1b5e3a",
            alpha=0.9,
        )


def _mark_failures(ax: Axes, records: list[ExperimentRecord]) -> None:
    """Crashes and timeouts have no value: red x marks along the bottom."""
    xs = [r.n for r in records if r.status in (Status.CRASH, Status.TIMEOUT)]
    if xs:
        ax.scatter(
            xs, [0.02] * len(xs), transform=ax.get_xaxis_transform(), marker="x",
            s=22, color=RED, lw=1.2, zorder=3, clip_on=False, label="Crash / timeout",
        )  # fmt: skip


def _y_limits(values: list[float], keep_visible: float) -> tuple[float, float] | None:
    """Limits that leave out far outliers but keep the best; None = no clipping."""
    if len(values) < 4:
        return None
    ordered = sorted(values)
    q1, q3 = ordered[len(ordered) // 4], ordered[(3 * len(ordered)) // 4]
    fence = OUTLIER_FENCE * (q3 - q1)
    inside = [v for v in ordered if q1 - fence <= v <= q3 + fence] + [keep_visible]
    lo, hi = min(inside), max(inside)
    if fence == 0 or (lo == ordered[0] and hi == ordered[-1]):
        return None
    pad = 0.08 * (hi - lo)
    return lo - pad, hi + pad


def _clip(ax: Axes, records: list[ExperimentRecord], sign: float) -> None:
    values = [v for _, v in _valued(records)]
    steps = _running_best(records, sign)
    limits = _y_limits(values, steps[-1][1]) if steps else None
    if limits is None:
        return
    ax.set_ylim(*limits)
    hidden = sum(not limits[0] <= v <= limits[1] for v in values)
    ax.text(
        0.995, 0.99, f"{hidden} off-scale point{'s' * (hidden != 1)} not shown",
        transform=ax.transAxes, ha="right", va="top", fontsize=7, color="#777777",
    )  # fmt: skip


def _draw(ax: Axes, records: list[ExperimentRecord], sign: float) -> None:
    last_n = max(r.n for r in records)
    dot = {"edgecolors": "none", "zorder": 2}
    _scatter(ax, records, Status.DISCARD, s=14, color=GREY, alpha=0.8, label="Discarded", **dot)
    _scatter(
        ax, records, Status.EXPLORE, s=18, marker="D", color=EXPLORE, alpha=0.9,
        label="Explore", **dot,
    )  # fmt: skip
    _plot_best(ax, records, sign, last_n)
    _scatter(
        ax, records, Status.KEEP, s=42, color=GREEN, edgecolors="black", linewidths=0.5,
        zorder=4, label="Kept",
    )  # fmt: skip
    _label_kept(ax, records, sign)
    _mark_failures(ax, records)
    _clip(ax, records, sign)
    ax.set_xlim(0, last_n + max(1.0, 0.02 * last_n))
    ax.legend(loc="upper right" if sign < 0 else "lower right", fontsize=8, framealpha=0.9)


def plot_progress(
    records: list[ExperimentRecord], direction: str, metric: str, path: Path, title: str = ""
) -> Path:
    """Karpathy's autoresearch plot: every try, the kept ones labelled, the running best."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sign = _sign(direction)
    plotted = [r for r in records if r.status not in (Status.REJECTED, Status.INVALID)]
    fig, ax = plt.subplots(figsize=FIGSIZE)
    try:
        if plotted:
            _draw(ax, plotted, sign)
        else:
            ax.text(0.5, 0.5, "no experiments yet", transform=ax.transAxes,
                    ha="center", va="center", color="#777777")  # fmt: skip
        kept = sum(r.status is Status.KEEP for r in records)
        ax.set_title(title or f"{len(records)} experiments, {kept} kept")
        ax.set_xlabel("Experiment #")
        ax.set_ylabel(f"{metric} ({'lower' if sign < 0 else 'higher'} is better)")
        ax.grid(alpha=0.25)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path
