"""Deciding 'better' from noisy paired runs: SPRT's error rates, its edge cases, seeds and the cache."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from metaexp.errors import SpecError
from metaexp.evaluate.noise import IncumbentCache, SeedSchedule, SPRTConfig, batched, sprt

CFG = SPRTConfig()
COMPARISONS = 500


def simulate(mu: float, sigma: float) -> list[bool]:
    rng = np.random.default_rng(0)
    draws = rng.normal(mu, sigma, size=(COMPARISONS, CFG.max_runs))
    return [sprt(row.tolist(), CFG).better for row in draws]


# --- the two statistical properties, with the defaults and noise comparable to the effect


def test_no_true_difference_is_rarely_called_better() -> None:
    rate = sum(simulate(0.0, CFG.delta)) / COMPARISONS
    assert rate <= CFG.alpha + 0.02


def test_a_true_improvement_of_delta_is_usually_found() -> None:
    rate = sum(simulate(CFG.delta, CFG.delta)) / COMPARISONS
    assert rate >= 1 - CFG.beta - 0.05


# --- the sequential test's cases


def test_decides_at_the_first_stopping_point_whatever_follows() -> None:
    gains = np.random.default_rng(0).normal(CFG.delta, CFG.delta, size=CFG.max_runs).tolist()
    whole = sprt(gains, CFG)
    assert whole.decided
    driven = next(v for v in (sprt(gains[:n], CFG) for n in range(1, len(gains) + 1)) if v.decided)
    assert driven == whole
    assert not sprt(gains[: whole.n - 1], CFG).decided


def test_no_better_verdict_during_the_warm_up() -> None:
    big = [10 * CFG.delta + 0.001 * i for i in range(CFG.min_runs - 1)]
    verdict = sprt(big, CFG)
    assert not verdict.decided and "warm-up" in verdict.reason
    assert sprt([*big, 10 * CFG.delta], CFG).better


@pytest.mark.parametrize(("gain", "better"), [(0.02, True), (0.004, False), (0.005, False), (-0.01, False)])
def test_zero_variance_decides_by_the_side_of_delta_over_two(gain: float, better: bool) -> None:
    gains = [gain] * CFG.max_runs
    verdict = sprt(gains, CFG)
    assert verdict.decided and verdict.better is better
    assert verdict.std == 0.0
    if gain > 0:  # an all-negative run stops early for futility instead
        assert verdict.n == CFG.min_runs and "no noise" in verdict.reason and "delta/2" in verdict.reason


def test_max_runs_ends_undecided_as_not_better() -> None:
    # mean gain exactly delta/2: the LLR stays at 0, between the bounds, to the end
    half = CFG.delta / 2
    gains = [half + 0.004, half - 0.004] * CFG.max_runs
    verdict = sprt(gains, CFG)
    assert verdict.decided and not verdict.better
    assert verdict.n == CFG.max_runs and "max_runs" in verdict.reason
    assert not sprt(gains[: CFG.max_runs - 1], CFG).decided


def test_futility_stops_a_hopeless_candidate_before_the_warm_up() -> None:
    verdict = sprt([-0.02, -0.03, 0.001, 0.05], CFG)
    assert verdict.decided and not verdict.better and verdict.n == 3
    assert "futility" in verdict.reason and "standard errors" in verdict.reason
    assert verdict.mean == pytest.approx((-0.02 - 0.03 + 0.001) / 3)


def test_futility_when_no_run_improved() -> None:
    verdict = sprt([0.0, 0.0, 0.0, 0.0], CFG)  # e.g. a change that touches nothing the harness runs
    assert verdict.decided and not verdict.better and verdict.n == 3
    assert "none of the 3 runs improved" in verdict.reason


def test_a_non_finite_gain_is_not_better() -> None:
    verdict = sprt([0.01, math.nan], CFG)
    assert verdict.decided and not verdict.better and "non-finite" in verdict.reason


@pytest.mark.parametrize(
    "kwargs", [{"alpha": 0.0}, {"alpha": 0.6, "beta": 0.5}, {"delta": 0.0}, {"min_runs": 1}, {"max_runs": 5}]
)
def test_config_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        SPRTConfig(**kwargs)


# --- seed 004's fixed-K rule


def test_batched_improves_within_one_std_is_not_kept() -> None:
    verdict = batched([0.03, -0.01, 0.01], 3)
    assert verdict.decided and not verdict.better
    assert verdict.mean == pytest.approx(0.01) and verdict.std == pytest.approx(0.02)
    assert "within 1 std" in verdict.reason


def test_batched_improves_by_more_than_one_std_is_kept() -> None:
    verdict = batched([0.01, 0.012, 0.008], 3)
    assert verdict.decided and verdict.better and "kept" in verdict.reason


def test_batched_keeps_only_a_mean_gain_strictly_above_one_std() -> None:
    """The boundary: gains 1, 1, 1, 5 have mean 2 and sample std 2 exactly (no rounding in Welford's
    sums), which is not 'more than one std'; lowering the last gain a little keeps it."""
    level = batched([1.0, 1.0, 1.0, 5.0], 4)
    assert level.decided and level.mean == 2.0 and level.std == 2.0
    assert not level.better and "within 1 std" in level.reason
    above = batched([1.0, 1.0, 1.0, 4.9], 4)
    assert above.mean > above.std and above.better


def test_batched_waits_for_its_k_runs_and_one_run_keeps_any_improvement() -> None:
    assert not batched([0.05, 0.05], 3).decided
    assert batched([0.001], 1).better
    assert not batched([-0.001], 1).better


# --- paired seeds and the incumbent's cache


def test_seed_schedule_is_deterministic() -> None:
    a, b = SeedSchedule(1234), SeedSchedule(1234)
    assert [a.seed(i) for i in range(30)] == [b.seed(i) for i in range(30)] == a.seeds(30)
    assert a.seed(0) == 1234 and len(set(a.seeds(30))) == 30
    assert SeedSchedule(1234, block=1).seed(0) not in a.seeds(30)
    assert all(0 <= s < 2**31 for s in SeedSchedule(2**31 - 1).seeds(5))


def test_incumbent_cache_round_trip() -> None:
    cache = IncumbentCache()
    assert cache.get("abc", 7) is None
    cache.put("abc", 7, 2.5)
    cache.put("abc", 8, 2.25)
    cache.put("def", 7, 3.0)
    restored = IncumbentCache.from_dict(json.loads(json.dumps(cache.to_dict())))
    assert restored.to_dict() == cache.to_dict()
    assert restored.get("abc", 8) == 2.25 and restored.get("def", 8) is None
    assert restored.seeds("abc") == [7, 8]
    with pytest.raises(ValueError, match="finite"):
        cache.put("abc", 9, math.nan)
