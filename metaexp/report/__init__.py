"""What a run achieved: summary figures, a text block, and the progress plot.

Everything here reads records and writes nothing but the PNG; `metaexp report`
and `metaexp status` call it. Direction is folded into one sign up front, so
every comparison below reads "higher score is better".
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaexp.errors import SpecError
from metaexp.record.records import ExperimentRecord, Status

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Summary", "format_summary", "plot_progress", "summarize"]

LABEL_CHARS = 30  # a kept point's label on the plot, characters
LABEL_FONT = 7  # points
LABEL_ANGLE = 30  # degrees from horizontal
LABEL_GAP_PX = 6  # least gap between a kept point and its label, pixels
LABEL_DX_PX = 5  # a label starts this far beside its point, pixels
LABEL_CLIMBS = 5  # half-line steps a label may climb to clear another before it is left out
LABEL_H_PX = 14  # room a label's line needs across its baseline, pixels
TABLE_CHARS = 60  # a kept change's description in the text table, characters
DPI = 120  # plot resolution, dots per inch
FIGSIZE = (13.0, 6.5)  # plot size, inches
JUDGED = (Status.KEEP, Status.DISCARD, Status.EXPLORE, Status.ESCAPE)  # tries with a value
FAIL_Y = 0.025  # crash marks' height, fraction of the axes; the data keeps above 2 * FAIL_Y
OUTLIER_FENCE = 3.0  # a value this many IQRs beyond the quartiles may be clipped off the plot


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
        gains=list(_gains(records, sign)),
    )


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
    if s.gains:
        lines += ["", "kept changes (gain > 0 is better):", *_gain_table(s.gains)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Plot

GREY = "#b8b8b8"
EXPLORE = "#8da0cb"  # muted blue
ESCAPE = "#b39ddb"  # muted violet
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


def _place_labels(
    anchors: list[tuple[float, float]],
    lengths: list[float],
    priority: list[float],
    angle: float = LABEL_ANGLE,
    top: float = math.inf,
) -> list[float | None]:
    """How far above its anchor (pixels) each label starts; None where it finds no room.

    Labels run from anchors (pixels, y up) at `angle` degrees, their text above the line
    they start on. The highest `priority` go first, each at the lowest of a few heights
    where it overlaps no label placed before and stays under `top`.
    """
    sin, cos = math.sin(math.radians(angle)), math.cos(math.radians(angle))
    placed: list[tuple[float, float, float]] = []  # (start, end) along the labels, height across
    offsets: list[float | None] = [None] * len(anchors)
    for i in sorted(range(len(anchors)), key=lambda i: -priority[i]):
        (x, y), length = anchors[i], lengths[i]
        for step in range(LABEL_CLIMBS + 1):
            offset = LABEL_GAP_PX + step * LABEL_H_PX / 2 / cos  # half a line across per step
            if y + offset + length * sin + LABEL_H_PX > top:
                break
            u, v = x * cos + (y + offset) * sin, (y + offset) * cos - x * sin
            if all(u + length <= u0 or u >= u1 or abs(v - v0) >= LABEL_H_PX for u0, u1, v0 in placed):
                placed.append((u, u + length, v))
                offsets[i] = offset
                break
    return offsets


def _text_widths(ax: Axes, texts: list[str]) -> list[float]:
    """Each label's length in pixels, as the renderer will draw it."""
    from matplotlib.font_manager import FontProperties

    renderer = ax.figure.canvas.get_renderer()  # type: ignore[attr-defined]
    font = FontProperties(size=LABEL_FONT)
    return [renderer.get_text_width_height_descent(t, font, ismath=False)[0] for t in texts]


def _label_kept(ax: Axes, records: list[ExperimentRecord], sign: float) -> None:
    """Label kept points on the worse side (up when minimising), where points thin out.

    A label that would run off the right edge lies level instead, ending just past its
    point on the better side: under the best line, where no point is. The baseline and
    the biggest gains are placed first; a label with no room is left out.
    """
    kept = [(r, v) for r, v in _valued(records) if r.status is Status.KEEP]
    if not kept:
        return
    gain = {n: g for n, _, g, _ in _gains(records, sign)}
    priority = [gain.get(r.n, math.inf) for r, _ in kept]
    texts = [_short(r.description, LABEL_CHARS) for r, _ in kept]
    lengths = _text_widths(ax, texts)
    pixels = [(float(x), float(y)) for x, y in ax.transData.transform([(r.n, v) for r, v in kept])]
    box, cos = ax.get_window_extent(), math.cos(math.radians(LABEL_ANGLE))
    hangs = [x + LABEL_DX_PX + n * cos > float(box.x1) for (x, _), n in zip(pixels, lengths, strict=True)]
    floor = box.y0 + 2 * FAIL_Y * box.height  # above the crash marks
    flip = 1.0 if sign < 0 else -1.0
    for hang in (False, True):
        # label space: the label runs right and its text lies up; a hanging one is turned 180°
        sx = -1.0 if hang else 1.0
        sy = flip * sx
        idx = [i for i, h in enumerate(hangs) if h is hang]
        anchors = [(sx * pixels[i][0] + LABEL_DX_PX, sy * pixels[i][1]) for i in idx]
        offsets = _place_labels(
            anchors, [lengths[i] for i in idx], [priority[i] for i in idx],
            0.0 if hang else LABEL_ANGLE, box.y1 if sy > 0 else -floor,
        )  # fmt: skip
        for i, offset in zip(idx, offsets, strict=True):
            if offset is not None:
                ax.annotate(
                    texts[i], (kept[i][0].n, kept[i][1]),
                    xytext=(sx * LABEL_DX_PX, sy * offset), textcoords="offset pixels",
                    rotation=0.0 if hang else flip * LABEL_ANGLE, rotation_mode="anchor",
                    ha="right" if hang else "left", va="bottom" if sy > 0 else "top",
                    fontsize=LABEL_FONT, color="#1b5e3a",
                )  # fmt: skip


def _mark_failures(ax: Axes, records: list[ExperimentRecord]) -> None:
    """Crashes and timeouts have no value: red x marks along the bottom."""
    xs = [r.n for r in records if r.status in (Status.CRASH, Status.TIMEOUT)]
    if xs:
        ax.scatter(
            xs, [FAIL_Y] * len(xs), transform=ax.get_xaxis_transform(), marker="x",
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
    ax.plot([], [], " ", label=f"{hidden} off-scale, not shown")


def _draw(ax: Axes, records: list[ExperimentRecord], sign: float) -> None:
    from matplotlib.ticker import MaxNLocator

    last_n = max(r.n for r in records)
    dot = {"edgecolors": "none", "zorder": 2}
    _scatter(ax, records, Status.DISCARD, s=14, color=GREY, alpha=0.8, label="Discarded", **dot)
    _scatter(
        ax, records, Status.EXPLORE, s=18, marker="D", color=EXPLORE, alpha=0.9,
        label="Explore", **dot,
    )  # fmt: skip
    _scatter(ax, records, Status.ESCAPE, s=20, marker="s", color=ESCAPE, label="Escape", **dot)
    _plot_best(ax, records, sign, last_n)
    _scatter(
        ax, records, Status.KEEP, s=42, color=GREEN, edgecolors="black", linewidths=0.5,
        zorder=4, label="Kept",
    )  # fmt: skip
    _mark_failures(ax, records)
    _clip(ax, records, sign)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo - 2 * FAIL_Y * (hi - lo), hi)  # a clear band for the crash marks
    ax.set_xlim(0, last_n + max(1.0, 0.02 * last_n))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=6, fontsize=8, frameon=False)


def plot_progress(
    records: list[ExperimentRecord], direction: str, metric: str, path: Path, title: str = ""
) -> Path:
    """Karpathy's autoresearch plot: every try, the kept ones labelled, the running best."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sign = _sign(direction)
    plotted = [r for r in records if r.status.harness_ran]  # migrants are copies of tries shown
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)  # label offsets are in these pixels
    try:
        if plotted:
            _draw(ax, plotted, sign)
        if not _valued(plotted):
            ax.set_yticks([])
            message = "no experiment has a value yet" if plotted else "no experiments yet"
            ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", color="#777777")
        kept = sum(r.status is Status.KEEP for r in records)
        ax.set_title(title or f"{len(records)} experiment{'s' * (len(records) != 1)}, {kept} kept")
        ax.set_xlabel("Experiment #")
        ax.set_ylabel(f"{metric} ({'lower' if sign < 0 else 'higher'} is better)")
        ax.grid(alpha=0.25)
        fig.tight_layout()
        if plotted:  # after the layout, which moves the axes the label offsets are made for
            _label_kept(ax, plotted, sign)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path


def validation_points(records: list[ExperimentRecord]) -> list[tuple[int, float, dict[str, float]]]:
    """(experiment, search value, held-out metrics) of every new best the validation harness scored."""
    points = []
    for rec in records:
        held_out = rec.extra.get("validation", {}).get("metrics") or {}
        if rec.best and rec.value is not None and held_out:
            points.append((rec.n, rec.value, dict(held_out)))
    return points


def format_validation(records: list[ExperimentRecord], metric: str) -> str:
    """Search metric against the held-out metric at each new best: a widening gap shows overfitting."""
    points = validation_points(records)
    if not points:
        return ""
    names = sorted({name for _n, _v, held_out in points for name in held_out})
    lines = ["held-out validation at each new best (search metric vs held-out):"]
    lines.append(f"  {'#':>4}  {metric:>12}  " + "  ".join(f"{name:>12}" for name in names))
    for n, value, held_out in points:
        cells = "  ".join(f"{held_out[name]:>12.6g}" if name in held_out else f"{'-':>12}" for name in names)
        lines.append(f"  {n:>4}  {value:>12.6g}  {cells}")
    return "\n".join(lines)


def plot_validation(records: list[ExperimentRecord], metric: str, path: Path) -> Path | None:
    """The search metric and the held-out metric(s) at each new best, on one axis each."""
    points = validation_points(records)
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({name for _n, _v, held_out in points for name in held_out})
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=DPI)
    try:
        xs = [n for n, _v, _h in points]
        ax.step(xs, [v for _n, v, _h in points], where="post", marker="o", label=f"search: {metric}")
        for name in names:
            got = [(n, h[name]) for n, _v, h in points if name in h]
            ax.step(
                [n for n, _ in got], [v for _, v in got], where="post", marker="s", label=f"held-out: {name}"
            )
        ax.set_xlabel("Experiment # (new bests)")
        ax.set_ylabel("metric")
        ax.set_title("search vs held-out validation: a widening gap means overfitting the eval")
        ax.grid(alpha=0.25)
        ax.legend()
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path


def format_population(data: dict[str, Any], metric: str) -> str:
    """Islands (their Logbook's last row, archive coverage) and the hall of fame of a population run."""
    lines = ["islands (fitness is the metric with its direction folded in: higher is better):"]
    for island in data.get("islands", []):
        row = island["logbook"][-1] if island.get("logbook") else {}
        text = ", ".join(f"{k} {v:.6g}" for k, v in row.items() if k in ("gen", "size", "max", "avg", "std"))
        archive = island.get("archive")
        if archive:
            cells = 1
            for _low, _high, bins in archive["bins"]:
                cells *= int(bins)
            text += f", archive {len(archive['elites'])}/{cells} cells"
        lines.append(f"  island {island['island']}: {text}")
    members = data.get("hall_of_fame", {}).get("members", [])
    if members:
        lines.append(f"hall of fame ({metric}):")
        lines += [
            f"  #{m['n']:<5} {m['commit'][:7]}  {m['values'][0]:.6g}  island {m['island']}"
            for m in members[:10]
        ]
    return "\n".join(lines)
