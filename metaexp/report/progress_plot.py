"""The progress plot: every try, the kept ones labelled where they fit, and the running best.

It reads records and writes nothing but the PNG. Label offsets are in the
figure's pixels (FIGSIZE at DPI).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaexp.record.records import ExperimentRecord, Status
from metaexp.report.summary import _gains, _running_best, _short, _sign, _valued

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["DPI", "FIGSIZE", "plot_progress"]

LABEL_CHARS = 30  # a kept point's label on the plot, characters
LABEL_FONT = 7  # points
LABEL_ANGLE = 30  # degrees from horizontal
LABEL_GAP_PX = 6  # least gap between a kept point and its label, pixels
LABEL_DX_PX = 5  # a label starts this far beside its point, pixels
LABEL_CLIMBS = 5  # half-line steps a label may climb to clear another before it is left out
LABEL_H_PX = 14  # room a label's line needs across its baseline, pixels
DPI = 120  # plot resolution, dots per inch
FIGSIZE = (13.0, 6.5)  # plot size, inches
FAIL_Y = 0.025  # crash marks' height, fraction of the axes; the data keeps above 2 * FAIL_Y
OUTLIER_FENCE = 3.0  # a value this many IQRs beyond the quartiles may be clipped off the plot
GREY = "#b8b8b8"
EXPLORE = "#8da0cb"  # muted blue
ESCAPE = "#b39ddb"  # muted violet
GREEN = "#2ca25f"
RED = "#d7301f"


# ---------------------------------------------------------------------------
# Points and the running best


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


# ---------------------------------------------------------------------------
# Labels


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


# ---------------------------------------------------------------------------
# Failures, clipping and the whole plot


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
