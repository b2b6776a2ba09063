"""Summary figures, the text block, the progress plot and the lineage picture, from records built by hand
(and `metaexp report` on one real run)."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import Project

from metaexp.errors import SpecError
from metaexp.record.records import ExperimentRecord, Status
from metaexp.report import (
    DPI,
    FIGSIZE,
    _draw,
    _label_kept,
    _place_labels,
    format_summary,
    plot_progress,
    summarize,
)
from metaexp.report.lineage_plot import lineage_of_best, plot_lineage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rec(
    n: int, status: Status, value: float | None = None, parent: int | None = None, desc: str = ""
) -> ExperimentRecord:
    """Experiment n on commit c<n>, its parent commit c<parent> (default: none)."""
    return ExperimentRecord(
        n=n,
        commit=None if status is Status.INVALID else f"c{n:06d}" + "0" * 33,
        parent=None if parent is None else f"c{parent:06d}" + "0" * 33,
        timestamp="2025-01-01T00:00:00Z",
        status=status,
        description=desc or f"change {n}",
        value=value,
        metrics={} if value is None else {"loss": value},
    )


def minimize_run() -> list[ExperimentRecord]:
    """Baseline 1.0; keeps at 0.9 and 0.8; an explore to 0.85 then a keep at 0.7 beside it."""
    return [
        rec(1, Status.KEEP, 1.0, desc="baseline"),
        rec(2, Status.DISCARD, 1.1, parent=1),
        rec(3, Status.KEEP, 0.9, parent=1, desc="wider MLP"),
        rec(4, Status.CRASH, parent=3),
        rec(5, Status.KEEP, 0.8, parent=3, desc="lower learning rate"),
        rec(6, Status.EXPLORE, 0.85, parent=5),
        rec(7, Status.TIMEOUT, parent=6),
        rec(8, Status.KEEP, 0.7, parent=6, desc="warmup 500 steps"),
        rec(9, Status.REJECTED, parent=8),
        rec(10, Status.INVALID, parent=8),
        rec(11, Status.DISCARD, 0.75, parent=8),
    ]


def test_summarize_minimize() -> None:
    s = summarize(minimize_run(), "minimize", "loss")
    assert s.total == 11 and s.ran == 9
    assert set(s.counts) == {str(status) for status in Status}
    nonzero = {k: v for k, v in s.counts.items() if v}
    assert nonzero == {
        "keep": 4,
        "discard": 2,
        "explore": 1,
        "crash": 1,
        "timeout": 1,
        "rejected": 1,
        "invalid": 1,
    }
    assert s.judged == 6  # 3 keeps, 2 discards, 1 explore after the baseline
    assert s.keep_rate == pytest.approx(3 / 6)
    assert (s.baseline, s.best, s.best_n) == (1.0, 0.7, 8)
    assert s.best_commit is not None and s.best_commit.startswith("c000008")
    assert [(n, c) for n, c, _, _ in s.gains] == [(3, "c000003"), (5, "c000005"), (8, "c000008")]
    # #8 replaced the explore at 0.85, not the best 0.8
    assert [g for _, _, g, _ in s.gains] == pytest.approx([0.1, 0.1, 0.15])
    assert s.improvement == pytest.approx(0.3)


def test_summarize_maximize_gains_are_positive() -> None:
    records = [
        rec(1, Status.KEEP, 0.50, desc="baseline"),
        rec(2, Status.KEEP, 0.55, parent=1),
        rec(3, Status.DISCARD, 0.52, parent=2),
        rec(4, Status.KEEP, 0.61, parent=2),
        rec(5, Status.DISCARD, 0.40, parent=4),
    ]
    s = summarize(records, "maximize", "accuracy")
    assert (s.baseline, s.best, s.best_n) == (0.50, 0.61, 4)
    assert s.keep_rate == pytest.approx(2 / 4)
    assert [g for _, _, g, _ in s.gains] == pytest.approx([0.05, 0.06])
    assert all(g > 0 for _, _, g, _ in s.gains)
    assert s.improvement == pytest.approx(0.11)


def test_gains_follow_each_lineage_and_migrants_are_not_tries() -> None:
    """Two islands interleaved: a keep is measured against its own parent, not the last row."""
    records = [
        rec(1, Status.KEEP, 1.0, desc="baseline"),
        rec(2, Status.KEEP, 0.9, parent=1),  # island 0
        rec(3, Status.ESCAPE, 1.2, parent=1),  # island 1 jumps away
        rec(4, Status.KEEP, 1.1, parent=3),  # island 1 improves on its own 1.2
        rec(5, Status.MIGRATE, 0.9, parent=2),  # a copy of #2, not a try
        rec(6, Status.DISCARD, 0.95, parent=2),
    ]
    s = summarize(records, "minimize", "loss")
    assert [(n, g) for n, _, g, _ in s.gains] == [(2, pytest.approx(0.1)), (4, pytest.approx(0.1))]
    assert s.judged == 4 and s.keep_rate == pytest.approx(2 / 4)
    assert s.ran == 5 and s.counts["migrate"] == 1 and s.counts["escape"] == 1
    assert (s.best, s.best_n) == (0.9, 2)


def test_summarize_without_values() -> None:
    for records in ([], [rec(1, Status.CRASH), rec(2, Status.INVALID)]):
        s = summarize(records, "minimize", "loss")
        assert s.baseline is s.best is s.best_n is s.best_commit is None
        assert s.keep_rate == 0.0 and s.gains == [] and s.improvement is None
        assert "no value yet" in format_summary(s, "loss")


def test_a_value_that_is_not_finite_is_no_value(tmp_path: Path) -> None:
    records = [
        *minimize_run(),
        rec(12, Status.DISCARD, float("nan"), parent=8),
        rec(13, Status.KEEP, float("-inf"), parent=8),
    ]
    s = summarize(records, "minimize", "loss")
    assert (s.best, s.best_n, len(s.gains)) == (0.7, 8, 3)
    assert_png(plot_progress(records, "minimize", "loss", tmp_path / "nan.png"))


def test_summarize_names_a_bad_direction() -> None:
    with pytest.raises(SpecError, match="'lower'"):
        summarize(minimize_run(), "lower", "loss")


def test_format_summary_mentions_best_and_kept_changes() -> None:
    text = format_summary(summarize(minimize_run(), "minimize", "loss"), "loss")
    assert "keep rate    50.0%" in text
    assert "1 (baseline) → 0.7 (best, #8 c000008)" in text
    assert "improvement  0.3 (30.00%)" in text
    for desc in ("wider MLP", "lower learning rate", "warmup 500 steps"):
        assert desc in text
    assert "+0.1500" in text and "crash 1" in text and "rejected 1" in text
    table = text.split("kept changes", 1)[1].splitlines()[1:]
    assert len({line.index("c000") for line in table[1:]}) == 1  # the columns line up


def test_labels_keep_apart_and_the_most_important_go_first() -> None:
    anchors = [(100.0, 100.0), (120.0, 98.0), (140.0, 96.0)]  # an experiment apart
    offsets = _place_labels(anchors, [150.0] * 3, priority=[1.0, 3.0, 2.0])
    assert offsets[1] == min(o for o in offsets if o is not None)  # the biggest gain sits lowest
    starts = [y + o for (_, y), o in zip(anchors, offsets, strict=True) if o is not None]
    assert len(starts) == 3 == len(set(starts))
    far = _place_labels([(100.0, 100.0), (900.0, 100.0)], [150.0, 150.0], [1.0, 2.0])
    assert far[0] == far[1]  # no clash, no climb
    crowd = _place_labels([(100.0 + i, 100.0) for i in range(20)], [150.0] * 20, list(range(20)))
    assert crowd[19] is not None and crowd.count(None) > 10  # no room: left out, not stacked sky-high
    assert _place_labels([(100.0, 100.0)], [150.0], [1.0], top=120.0) == [None]


def synthetic_run(n: int, seed: int = 0) -> list[ExperimentRecord]:
    """A realistic loop: noisy tries around the best, some keeps, crashes, one diverged run."""
    rng = random.Random(seed)
    records, best, head = [rec(1, Status.KEEP, 1.0, desc="baseline")], 1.0, 1
    for i in range(2, n + 1):
        u = rng.random()
        if u < 0.1:
            records.append(rec(i, rng.choice([Status.CRASH, Status.TIMEOUT, Status.INVALID]), parent=head))
            continue
        value = 5.0 if i == 7 else best + rng.gauss(0.002, 0.004)
        status = Status.KEEP if value < best else Status.DISCARD
        records.append(rec(i, status, value, parent=head, desc=f"idea number {i} with a long description"))
        if status is Status.KEEP:
            best, head = value, i
    return records


def assert_png(path: Path) -> None:
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5_000
    height, width, _ = matplotlib.image.imread(path).shape
    assert (width, height) == (1560, 780)  # 13 x 6.5 inches at 120 dpi


@pytest.mark.parametrize(
    ("name", "records", "direction"),
    [
        ("normal", synthetic_run(60), "minimize"),
        (
            "maximize",
            [replace(r, value=None if r.value is None else -r.value) for r in synthetic_run(40, 1)],
            "maximize",
        ),
        ("empty", [], "minimize"),
        ("all_crash", [rec(n, Status.CRASH) for n in range(1, 6)], "maximize"),
        ("single", [rec(1, Status.KEEP, 1.0, desc="baseline")], "minimize"),
        ("never_ran", [rec(1, Status.REJECTED), rec(2, Status.INVALID)], "minimize"),
    ],
)
def test_plot_progress_writes_a_png(
    tmp_path: Path, name: str, records: list[ExperimentRecord], direction: str
) -> None:
    path = tmp_path / "sub" / f"{name}.png"
    assert plot_progress(records, direction, "loss", path, title=name) == path
    assert_png(path)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_every_kept_point_of_a_short_run_is_labelled(direction: str) -> None:
    import matplotlib.pyplot as plt

    sign = -1.0 if direction == "minimize" else 1.0
    records = [replace(r, value=None if r.value is None else -sign * r.value) for r in minimize_run()]
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    try:
        _draw(ax, records, sign)
        fig.tight_layout()
        _label_kept(ax, records, sign)
        labels = [t.get_text() for t in ax.texts]
    finally:
        plt.close(fig)
    kept = [r for r in records if r.status is Status.KEEP]
    assert len(labels) == len(kept) == 4 and "warmup 500 steps" in labels


def test_plot_progress_closes_its_figures(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    plot_progress(synthetic_run(20), "minimize", "loss", tmp_path / "p.png")
    assert len(plt.get_fignums()) == before


# ---------------------------------------------------------------------------
# The lineage of the best


def test_the_lineage_of_the_best_is_its_chain_of_parents_with_the_other_tries_beside_it() -> None:
    tree = lineage_of_best(minimize_run(), "minimize")
    assert [r.n for r in tree.chain] == [1, 3, 5, 6, 8]  # through the explore at #6, #8's parent
    assert {d: [r.n for r in recs] for d, recs in tree.siblings.items()} == {1: [2], 2: [4], 3: [], 4: [7]}
    assert [r.n for r in tree.after_best] == [11, 9, 10]  # the valued first, then those that never ran


def test_a_migrant_is_no_step_of_the_lineage_its_child_descends_from_the_try_it_copies() -> None:
    records = [
        rec(1, Status.KEEP, 1.0, desc="baseline"),
        rec(2, Status.KEEP, 0.9, parent=1),  # island 0
        rec(3, Status.ESCAPE, 1.2, parent=1),  # island 1
        rec(4, Status.KEEP, 1.1, parent=3),
    ]
    migrant = replace(rec(5, Status.MIGRATE, 0.9), commit=records[1].commit, parent=records[1].commit)
    records += [migrant, rec(6, Status.KEEP, 0.8, parent=2), rec(7, Status.DISCARD, 0.85, parent=6)]
    tree = lineage_of_best(records, "minimize")
    assert [r.n for r in tree.chain] == [1, 2, 6]
    assert {d: [r.n for r in recs] for d, recs in tree.siblings.items()} == {1: [3], 2: []}
    assert [r.n for r in tree.after_best] == [7]
    assert lineage_of_best([rec(1, Status.CRASH)], "minimize").chain == []


@pytest.mark.parametrize(
    ("name", "records"),
    [
        ("short", minimize_run()),
        ("long", synthetic_run(120)),  # more siblings of one step than are drawn: "+k more"
        ("empty", []),
        ("never_ran", [rec(1, Status.REJECTED), rec(2, Status.INVALID)]),
    ],
)
def test_plot_lineage_writes_a_png(tmp_path: Path, name: str, records: list[ExperimentRecord]) -> None:
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    path = tmp_path / "sub" / f"{name}.png"
    assert plot_lineage(records, "minimize", "loss", path, title=name) == path
    assert_png(path)
    assert len(plt.get_fignums()) == before


def test_metaexp_report_draws_the_lineage_of_a_real_run_and_names_the_file(project: Project) -> None:
    project.run(budget={"max_experiments": 8})
    out = project.cli("report", "metaexp.yaml").stdout
    path = project.root / ".metaexp" / "landscape" / "lineage.png"
    assert f"wrote {path} (the lineage of the best)" in out
    assert_png(path)
