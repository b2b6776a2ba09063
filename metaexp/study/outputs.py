"""A study's outputs: study.json, the table in study.txt, and the curves in study.png."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metaexp.study.summary import RunSummary

__all__ = ["format_table", "plot_curves", "write_outputs"]

DPI = 120  # plot resolution, dots per inch
FIGSIZE = (10.0, 6.0)  # plot size, inches


# ---------------------------------------------------------------------------
# Table


def format_table(report: dict[str, Any]) -> str:
    budget = report["budget"]
    lines = [
        f"study {report['spec']}: target {report['metric']} {report['target']:g} "
        f"({report['direction']}), budget {budget} evaluations, {len(report['seeds'])} seeds",
        f"{'strategy':<18}{'success':>9}  {'rate [95% CI]':<20}{'median evals':>13}"
        f"{'(successful)':>14}{'median best':>13}",
    ]
    for row in report["strategies"]:
        med = row["median_evals_to_target"]
        ok = row["median_evals_successful"]
        rate = f"{row['success_rate']:.2f} [{row['ci95'][0]:.2f}, {row['ci95'][1]:.2f}]"
        best = row["median_best"]
        lines.append(
            f"{row['strategy']:<18}{row['successes']:>4}/{row['runs']:<4}  {rate:<20}"
            f"{(str(med) if med is not None else f'>{budget}'):>13}"
            f"{(f'{ok:g}' if ok is not None else '-'):>14}"
            f"{(f'{best:.6g}' if best is not None else '-'):>13}"
        )
    lines.append("median evals: evaluations by which half the runs reached the target (>budget: fewer did)")
    unfinished = sum(row["unfinished"] for row in report["strategies"])
    if unfinished:
        lines.append(f"{unfinished} run(s) unfinished (failed): left out; run the study again to resume them")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Files and curves


def write_outputs(report: dict[str, Any], summaries: Sequence[RunSummary], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = {**report, "runs": [asdict(s) for s in summaries]}
    (out / "study.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "study.txt").write_text(format_table(report) + "\n")
    plot_curves(report, summaries, out / "study.png")


def plot_curves(report: dict[str, Any], summaries: Sequence[RunSummary], path: Path) -> Path:
    """Per strategy: the median best-so-far over evaluations, with the runs' interquartile band.
    A run that stopped early (it reached the target) holds its last best to the end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    try:
        length = max((len(s.curve) for s in summaries), default=0)
        for row in report["strategies"]:
            mine = [s for s in summaries if s.strategy == row["strategy"] and s.stop]
            curves = [_padded(s.curve, length) for s in mine]
            curves = [c for c in curves if c]
            if not curves or not length:
                continue
            values = np.array(curves, dtype=float)
            x = np.arange(1, length + 1)
            label = f"{row['strategy']} ({row['successes']}/{row['runs']} reached)"
            (line,) = ax.plot(x, np.nanmedian(values, axis=0), lw=2, label=label)
            low, high = np.nanpercentile(values, [25, 75], axis=0)
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15, lw=0)
        ax.axhline(report["target"], color="black", ls="--", lw=1, label=f"target {report['target']:g}")
        better = "higher" if report["direction"] == "maximize" else "lower"
        ax.set_xlabel("evaluations")
        ax.set_ylabel(f"best {report['metric']} so far ({better} is better)")
        seeds = len(report["seeds"])
        ax.set_title(f"study {report['spec']}: median best-so-far and interquartile band, {seeds} seeds")
        ax.grid(alpha=0.25)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path


def _padded(curve: list[float | None], length: int) -> list[float]:
    if not curve:
        return []
    values = [math.nan if v is None else v for v in curve]
    return values + [values[-1]] * (length - len(values))
