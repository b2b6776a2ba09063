"""Value crossover (metaexp/operators/values.py: crossed) and a style's `whole` flag
(metaexp/operators/styles.py: Style.whole)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from metaexp.operators.styles import Style
from metaexp.operators.values import crossed, read_values

NAMES = ("A", "B", "C", "D")
LOCATED = {name: "p.py" for name in NAMES}


@dataclass(frozen=True)
class State:
    """What `crossed` reads of a lineage state: its commit and its target files."""

    commit: str
    files: dict[str, bytes]


def state(commit: str, values: dict[str, float]) -> State:
    text = "".join(f"{name} = {values[name]!r}\n" for name in NAMES)
    return State(commit * 40, {"p.py": text.encode()})


BASE = {"A": 1.0, "B": 2.0, "C": 3.0, "D": 4.0}
PAIRS = [  # (a, b): two, three and four names differ; the rest are shared
    (state("a", BASE), state("b", {**BASE, "A": 5.0, "D": 8.0})),
    (state("a", BASE), state("c", {**BASE, "B": 6.0, "C": 7.0, "D": 0.5})),
    (state("d", BASE), state("e", {"A": 9.0, "B": 0.25, "C": 0.75, "D": 1.5})),
    (
        state("f", {"A": 0.1, "B": 0.2, "C": 0.3, "D": 0.4}),
        state("g", {"A": 0.1, "B": 0.9, "C": 0.3, "D": 0.8}),
    ),
]


@pytest.mark.parametrize("pair", range(len(PAIRS)))
def test_a_value_crossover_child_takes_values_from_both_parents_and_equals_neither(pair: int) -> None:
    """Issue 13: crossing two parents' values yields, when it yields a child at all, one with
    values from both: never a copy of either parent (every differing name from one side)."""
    a, b = PAIRS[pair]
    va, vb = read_values(LOCATED, a.files), read_values(LOCATED, b.files)
    differ = [n for n in NAMES if va[n] != vb[n]]
    children = 0
    for seed in range(60):
        child = crossed(LOCATED, a, b, random.Random(seed))
        if child is None:
            continue
        children += 1
        tree = {**a.files, **child.files}
        values = read_values(LOCATED, tree)
        assert tree != a.files and tree != b.files, (seed, child.description)
        assert values == child.params, seed
        assert all(values[n] == va[n] for n in NAMES if n not in differ), (seed, values)
        assert all(values[n] in (va[n], vb[n]) for n in differ), (seed, values)
        from_a = [n for n in differ if values[n] == va[n]]
        from_b = [n for n in differ if values[n] == vb[n]]
        assert from_a and from_b, (seed, child.description, values)
        assert child.parent == a.commit and child.extra["parents"] == [a.commit, b.commit]
    assert children >= 10  # most draws give a child


def test_a_value_crossover_of_parents_differing_in_one_value_gives_no_child() -> None:
    """With fewer than two differing values every child would be one of the parents: None."""
    a = state("a", BASE)
    for b in (state("b", BASE), state("c", {**BASE, "C": 9.0})):
        assert all(crossed(LOCATED, a, b, random.Random(seed)) is None for seed in range(20))


@pytest.mark.parametrize(
    ("count", "scale", "whole"),
    [
        (None, 1.0, True),  # every value, all the way
        (None, 2.5, True),
        (None, 0.5, False),  # every value, but only part of the way
        (None, 0.999, False),
        (1, 1.0, False),  # all the way, but one value
        (3, 4.0, False),
        (1, 0.2, False),
    ],
)
def test_a_style_is_whole_only_when_it_changes_every_value_at_full_scale(
    count: int | None, scale: float, whole: bool
) -> None:
    """Style.whole: a sampler's suggestion goes in whole only for a style that changes every value
    (count None) and moves it all the way (scale >= 1); either one alone is not enough."""
    assert Style("s", "instruction", scale, count).whole is whole
