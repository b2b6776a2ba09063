"""Held-out validation: the search metric against the held-out metric(s) at each new best.

A widening gap between the two shows the search overfitting its eval.
"""

from __future__ import annotations

from pathlib import Path

from metaexp.record.records import ExperimentRecord
from metaexp.report.progress_plot import DPI

__all__ = ["format_validation", "plot_validation", "validation_points"]


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
