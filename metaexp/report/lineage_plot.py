"""The lineage of the best: the chain of parents from the baseline to the best try, and beside each
step what else was tried from the same parent (kept, explored, discarded, crashed), as a tree.

Read left to right: column d holds the d-th try of the chain (on the middle line, green, linked by
the thick line) and the other children of the chain's previous try, spread above and below it
(better values nearer the line). The list on the right names each step of the chain. It reads
records and writes nothing but the PNG (`metaexp report`: lineage.png).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from metaexp.record.records import ExperimentRecord, Status
from metaexp.report.progress_plot import DPI, ESCAPE, EXPLORE, FIGSIZE, GREEN, GREY, RED
from metaexp.report.summary import _short, _sign, summarize

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Lineage", "lineage_of_best", "plot_lineage"]

SHOWN_PER_STEP = 12  # siblings drawn beside one step of the chain; the rest are counted
LISTED_STEPS = 40  # steps named in the list on the right
LIST_CHARS = 34  # a step's description in that list, characters
LABEL_FONT = 7  # points
LABELLED_STEPS = 14  # a longer chain labels every k-th step (and the best), so labels never overlap
NEVER_RAN = "#d9d9d9"  # invalid and rejected tries

# status -> (marker, colour, size, label)
STYLE = {
    Status.KEEP: ("o", GREEN, 30, "Kept"),
    Status.EXPLORE: ("D", EXPLORE, 24, "Explore"),
    Status.ESCAPE: ("s", ESCAPE, 26, "Escape"),
    Status.DISCARD: ("o", GREY, 18, "Discarded"),
    Status.CRASH: ("x", RED, 26, "Crash / timeout"),
    Status.TIMEOUT: ("x", RED, 26, "Crash / timeout"),
    Status.INVALID: ("x", NEVER_RAN, 22, "Never ran (invalid, rejected)"),
    Status.REJECTED: ("x", NEVER_RAN, 22, "Never ran (invalid, rejected)"),
}


@dataclass(frozen=True)
class Lineage:
    chain: list[ExperimentRecord]  # the baseline first, the best last
    siblings: dict[int, list[ExperimentRecord]]  # chain step d -> the others tried from step d - 1
    after_best: list[ExperimentRecord]  # tried from the best (none of them beat it)


def lineage_of_best(records: list[ExperimentRecord], direction: str) -> Lineage:
    """The best try's chain of parents and every other child of each step (migrants are copies:
    a child of a migrant counts as a child of the try it copies)."""
    sign = _sign(direction)
    best_n = summarize(records, direction, "").best_n
    tries = [r for r in records if r.status is not Status.MIGRATE]
    if best_n is None:
        return Lineage([], {}, [])
    by_commit: dict[str, ExperimentRecord] = {}
    for rec in tries:
        if rec.commit:
            by_commit.setdefault(rec.commit, rec)
    node = next(r for r in tries if r.n == best_n)
    chain = [node]
    while node.parent in by_commit and by_commit[node.parent].n < node.n:
        node = by_commit[node.parent]
        chain.append(node)
    chain.reverse()
    children: dict[int, list[ExperimentRecord]] = defaultdict(list)
    for rec in tries:
        if rec.parent in by_commit:
            children[by_commit[rec.parent].n].append(rec)
    on_chain = {r.n for r in chain}

    def order(recs: list[ExperimentRecord]) -> list[ExperimentRecord]:  # better values first, then failures
        return sorted(recs, key=lambda r: (r.value is None, -sign * (r.value or 0.0), r.n))

    siblings = {
        d: order([r for r in children[chain[d - 1].n] if r.n not in on_chain]) for d in range(1, len(chain))
    }
    return Lineage(chain, siblings, order(children[chain[-1].n]))


def _spread(count: int) -> list[float]:
    """Rows for `count` siblings: +2, -1, +3, -2, ... (the first nearest the chain's line; the row
    just above it holds the chain's labels)."""
    return [float(i // 2 + 2) if i % 2 == 0 else -float(i // 2 + 1) for i in range(count)]


def _draw_column(ax: Axes, x: float, parent_y: float, recs: list[ExperimentRecord]) -> None:
    """The siblings of one step: a thin line from their parent, a marker by status, '+k' for the rest."""
    shown, rest = recs[:SHOWN_PER_STEP], recs[SHOWN_PER_STEP:]
    for rec, y in zip(shown, _spread(len(shown)), strict=True):
        marker, colour, size, _ = STYLE[rec.status]
        ax.plot([x - 1, x], [parent_y, y], color=colour, lw=0.6, alpha=0.5, zorder=1)
        ax.scatter([x], [y], marker=marker, color=colour, s=size, zorder=3, linewidths=1.2)
    if rest:
        kept = sum(r.status.accepted for r in rest)
        text = f"+{len(rest)} more" + (f"\n({kept} kept)" if kept else "")
        ax.annotate(
            text, (x, -SHOWN_PER_STEP / 2 - 1), ha="center", va="top", fontsize=LABEL_FONT, color="#777777"
        )


def _draw_tree(ax: Axes, tree: Lineage) -> None:
    chain = tree.chain
    xs = list(range(len(chain)))
    for d in range(1, len(chain)):
        _draw_column(ax, d, 0.0, tree.siblings[d])
    _draw_column(ax, len(chain), 0.0, tree.after_best)
    ax.plot(xs, [0.0] * len(xs), color=GREEN, lw=3, alpha=0.7, zorder=2, label="Chain to the best")
    ax.scatter(xs, [0.0] * len(xs), s=70, color=GREEN, edgecolors="black", linewidths=0.7, zorder=4)
    ax.scatter(
        [xs[-1]], [0.0], s=220, marker="*", color="#fdd835", edgecolors="black", zorder=5, label="Best"
    )
    every = -(-len(chain) // LABELLED_STEPS)  # ceil: at most LABELLED_STEPS labels (and the best's)
    labelled = [x for x in xs if x % every == 0 and x < xs[-1] - every / 2] + [xs[-1]]
    for x in labelled:
        rec = chain[x]
        value = "" if rec.value is None else f"\n{rec.value:.4g}"
        ax.annotate(
            f"#{rec.n}{value}", (x, 0.0), xytext=(0, 8), textcoords="offset points",
            ha="center", va="bottom", fontsize=LABEL_FONT, color="#1b5e3a", zorder=6,
        )  # fmt: skip
    for status in (Status.KEEP, Status.EXPLORE, Status.ESCAPE, Status.DISCARD, Status.CRASH, Status.INVALID):
        marker, colour, size, label = STYLE[status]
        ax.scatter([], [], marker=marker, color=colour, s=size, label=label)
    rows = min(SHOWN_PER_STEP, max([len(s) for s in tree.siblings.values()] + [len(tree.after_best), 1]))
    half = (rows + 1) // 2
    ax.set_ylim(-half - 1.6, half + 2.5)
    ax.set_xlim(-0.6, len(chain) + 0.6)
    ax.set_yticks([])
    ax.set_xticks(labelled, [str(x) for x in labelled])
    if tree.after_best:
        ax.annotate(
            "tried from\nthe best", (len(chain) + 0.5, half + 2.5), xytext=(0, -3),
            textcoords="offset points", ha="right", va="top", fontsize=LABEL_FONT, color="#777777",
        )  # fmt: skip
    ax.set_xlabel(
        "Step along the chain (0: the baseline); beside each step, the others tried from its parent"
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4, fontsize=8, frameon=False)


def _step_list(ax: Axes, tree: Lineage) -> None:
    """The chain's steps by name, beside the tree."""
    ax.axis("off")
    lines = [f"#{r.n:<4} {_short(r.description, LIST_CHARS)}" for r in tree.chain[:LISTED_STEPS]]
    if len(tree.chain) > LISTED_STEPS:
        lines.append(f"... {len(tree.chain) - LISTED_STEPS} more steps")
    ax.text(0.0, 1.0, "The chain, step by step:\n\n" + "\n".join(lines), va="top", ha="left",
            fontsize=LABEL_FONT, family="monospace", transform=ax.transAxes)  # fmt: skip


def plot_lineage(
    records: list[ExperimentRecord], direction: str, metric: str, path: Path, title: str = ""
) -> Path:
    """ShinkaEvolve-style lineage tree of the best: the chain from the baseline, with its siblings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tree = lineage_of_best(records, direction)
    fig, (ax, side) = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI, gridspec_kw={"width_ratios": [3.2, 1]})
    try:
        if tree.chain:
            _draw_tree(ax, tree)
            _step_list(side, tree)
            best = tree.chain[-1]
            shown = f"{best.value:.6g}" if best.value is not None else "?"
            steps = len(tree.chain) - 1
            head = f"lineage of the best: #{best.n}, {metric} {shown}, {steps} steps from the baseline"
        else:
            ax.axis("off")
            side.axis("off")
            ax.text(
                0.5,
                0.5,
                "no experiment has a value yet",
                transform=ax.transAxes,
                ha="center",
                color="#777777",
            )
            head = "lineage of the best"
        ax.set_title(f"{title}: {head}" if title else head)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path
