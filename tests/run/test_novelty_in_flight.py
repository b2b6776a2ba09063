"""What counts as new while other evaluations are in flight (metaexp/run/novelty.py: Novelty)."""

from __future__ import annotations

from metaexp.candidate import Candidate
from metaexp.run.novelty import Novelty
from metaexp.spec.space import Param

SPACE = {"A": Param(type="float", low=0.0, high=1.0), "B": Param(type="float", low=0.0, high=1.0)}


def candidate(a: float, b: float) -> Candidate:
    text = f"A = {a!r}\nB = {b!r}\n".encode()
    return Candidate("0" * 40, {"p.py": text}, f"A {a}, B {b}", params={"A": a, "B": b})


def test_a_candidate_near_a_point_in_flight_is_a_near_duplicate_and_a_far_one_is_new() -> None:
    """strategy.novelty: a candidate closer than the threshold to a point still being evaluated is
    skipped as a near-duplicate of that evaluation; one far from it is new, and once the evaluation
    lands (without a record) the near one is new again."""
    novelty = Novelty(SPACE, 0.05, [], "loss")
    c1, near, far = candidate(0.5, 0.5), candidate(0.51, 0.5), candidate(0.9, 0.1)
    assert novelty.check(near) == ("", {})  # nothing evaluated or in flight yet
    novelty.flying(c1)
    assert novelty.check(c1) == ("duplicate of an evaluation in flight", {})
    assert novelty.check(near) == ("near-duplicate of an evaluation in flight (strategy.novelty 0.05)", {})
    assert novelty.check(far) == ("", {})
    novelty.landed(c1)
    assert novelty.check(near) == ("", {})
    assert novelty.check(c1) == ("", {})


def test_without_a_novelty_threshold_a_near_point_in_flight_is_new() -> None:
    """Without strategy.novelty (threshold 0) only an exact repeat of an evaluation in flight is
    skipped; a different point, however near, is new."""
    novelty = Novelty(SPACE, 0.0, [], "loss")
    c1 = candidate(0.5, 0.5)
    novelty.flying(c1)
    assert novelty.check(candidate(0.5001, 0.5)) == ("", {})
    assert novelty.check(c1)[0] == "duplicate of an evaluation in flight"
