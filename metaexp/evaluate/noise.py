"""Is a candidate better than the incumbent, from repeated noisy paired evaluations?

Candidate and incumbent run on the same seeds (`SeedSchedule`), so each seed gives
one paired gain `objective.gain(candidate, incumbent)` (positive = better) and the
seed's own noise cancels in the difference. The incumbent's per-seed values are
measured once and cached (`IncumbentCache`): a seed costs the incumbent one run.

The loop drives one evaluation at a time: append the new gain, call `sprt(gains,
cfg)`, stop when the verdict is decided. `sprt` replays the gains from the first
one, so a list longer than the stopping point gives the same verdict (its `n` says
where it stopped). `batched` is the fixed-K rule it replaces.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from metaexp.errors import SpecError

__all__ = ["CONFIRM_BLOCK", "IncumbentCache", "SPRTConfig", "SeedSchedule", "Verdict", "batched", "sprt"]

FUTILITY_MIN_RUNS = 3  # runs before the futility stop may end a candidate
SEEDS_PER_BLOCK = 1000  # seed indices in one SeedSchedule block (>= any max_runs)
CONFIRM_BLOCK = 1_000_000  # re-evaluation blocks start here (seeds >= 10**9): never used by the test itself
_ZERO_VARIANCE = 1e-24  # s2 below this times scale**2 counts as no noise (float dust)


# --- configuration and verdict


@dataclass(frozen=True)
class SPRTConfig:
    """Wald's SPRT on paired gains: H0 mu = 0 against H1 mu = delta.

    alpha: the false "better" rate targeted; beta: the missed-improvement rate targeted.
    min_runs: warm-up before the plug-in variance is trusted; no "better" before it. 7 is the
    smallest that keeps false "better" <= alpha + 0.02 at sigma = 0.5, 1 and 2 delta (the
    sweep in bench/noise.py, 5,000 nulls each: 0.001, 0.032, 0.065; power at mu = delta
    0.998, 0.932, 0.678 -- at sigma = 2 delta, max_runs = 30 is too few to reach 0.75).
    futility_k: before the warm-up, a candidate whose mean gain is below -futility_k
    standard errors is discarded (this can only lower the false "better" rate).
    """

    alpha: float = 0.05
    beta: float = 0.2
    delta: float = 0.01  # smallest gain worth keeping, in the metric's units (after the sign)
    min_runs: int = 7
    max_runs: int = 30
    futility_k: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.alpha < 1 and 0 < self.beta < 1 and self.alpha + self.beta < 1):
            raise SpecError(f"SPRT needs 0 < alpha, beta and alpha + beta < 1, got {self.alpha}, {self.beta}")
        if not (self.delta > 0 and math.isfinite(self.delta)):
            raise SpecError(f"SPRT delta must be a positive number, got {self.delta}")
        if not 2 <= self.min_runs <= self.max_runs <= SEEDS_PER_BLOCK:
            limits = f"2 <= min_runs <= max_runs <= {SEEDS_PER_BLOCK}"
            raise SpecError(f"SPRT needs {limits}, got {self.min_runs}, {self.max_runs}")
        if self.futility_k < 0:
            raise SpecError(f"SPRT futility_k must be >= 0, got {self.futility_k}")

    @property
    def upper(self) -> float:
        """LLR at or above which H1 (better) is accepted."""
        return math.log((1 - self.beta) / self.alpha)

    @property
    def lower(self) -> float:
        """LLR at or below which H0 (not better) is accepted."""
        return math.log(self.beta / (1 - self.alpha))


@dataclass(frozen=True)
class Verdict:
    decided: bool
    better: bool
    reason: str
    n: int  # gains used
    mean: float  # of the n paired gains
    std: float  # sample standard deviation of the n gains (0.0 below two)


class _Running:
    """Mean and variance of a growing sample (Welford: no cancellation on tiny gains)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self._m2 = 0.0
        self.largest = -math.inf

    def add(self, x: float) -> None:
        self.n += 1
        step = x - self.mean
        self.mean += step / self.n
        self._m2 += step * (x - self.mean)
        self.largest = max(self.largest, x)

    @property
    def var(self) -> float:
        return self._m2 / (self.n - 1) if self.n > 1 else 0.0

    def verdict(self, decided: bool, better: bool, reason: str) -> Verdict:
        return Verdict(decided, better, reason, self.n, self.mean, math.sqrt(self.var))


# --- the sequential test


def sprt(gains: Sequence[float], cfg: SPRTConfig) -> Verdict:
    """The verdict at the first stopping point within `gains` (or 'continue' if none)."""
    run = _Running()
    for i, gain in enumerate(gains[: cfg.max_runs]):
        if not math.isfinite(gain):
            return run.verdict(True, False, f"run {i + 1} gave a non-finite gain ({gain}): not better")
        run.add(gain)
        verdict = _step(run, cfg)
        if verdict is not None:
            return verdict
    if run.n < cfg.min_runs:
        return run.verdict(False, False, f"warm-up: {run.n} of {cfg.min_runs} runs")
    bounds = f"({cfg.lower:.2f}, {cfg.upper:.2f})"
    return run.verdict(False, False, f"continue: LLR {_llr(run, cfg):.2f} within {bounds} after {run.n} runs")


def _step(run: _Running, cfg: SPRTConfig) -> Verdict | None:
    if run.n < cfg.min_runs:
        return _futility(run, cfg)
    if run.var <= _ZERO_VARIANCE * max(cfg.delta, abs(run.mean)) ** 2:
        return _zero_variance(run, cfg)
    llr = _llr(run, cfg)
    if llr >= cfg.upper:
        return run.verdict(True, True, f"better: LLR {llr:.2f} >= {cfg.upper:.2f} after {run.n} runs")
    if llr <= cfg.lower:
        return run.verdict(True, False, f"not better: LLR {llr:.2f} <= {cfg.lower:.2f} after {run.n} runs")
    if run.n >= cfg.max_runs:
        why = f"max_runs {cfg.max_runs} reached undecided (LLR {llr:.2f})"
        return run.verdict(True, False, f"not better: {why}, the incumbent stays (the conservative decision)")
    return None


def _llr(run: _Running, cfg: SPRTConfig) -> float:
    """Wald's log-likelihood ratio for mu = delta against mu = 0, normal gains, plug-in variance."""
    if run.var <= 0:
        return math.nan
    return (cfg.delta / run.var) * (run.n * run.mean - run.n * cfg.delta / 2)


def _zero_variance(run: _Running, cfg: SPRTConfig) -> Verdict:
    """All gains equal: no noise, so the LLR is +-inf by the side of delta/2 the gain lies on.

    Exactly delta/2 is equally likely under both hypotheses: the incumbent stays.
    """
    gain, half = run.mean, cfg.delta / 2
    if gain > half:
        return run.verdict(
            True, True, f"better: all {run.n} gains equal {gain:.4g} > delta/2 = {half:.4g} (no noise)"
        )
    why = f"all {run.n} gains equal {gain:.4g} <= delta/2 = {half:.4g} (no noise)"
    return run.verdict(True, False, f"not better: {why}")


def _futility(run: _Running, cfg: SPRTConfig) -> Verdict | None:
    """Before the warm-up only a discard is allowed, so this never adds a false 'better'."""
    if run.n < FUTILITY_MIN_RUNS:
        return None
    if run.largest <= 0:
        return run.verdict(True, False, f"futility: none of the {run.n} runs improved on the incumbent")
    stderr = math.sqrt(run.var / run.n)
    if run.mean < -cfg.futility_k * stderr:
        return run.verdict(
            True,
            False,
            f"futility: mean gain {run.mean:.4g} is below -{cfg.futility_k:g} standard errors "
            f"({stderr:.4g}) after {run.n} runs",
        )
    return None


# --- the fixed-K rule


def batched(gains: Sequence[float], repeats: int) -> Verdict:
    """Seed 004's rule: `repeats` runs; keep if the mean gain is positive and exceeds one std of the gains.

    With one run there is no spread: keep if it improves (the plain autoresearch rule).
    """
    if repeats < 1:
        raise SpecError(f"batched needs repeats >= 1, got {repeats}")
    run = _Running()
    for gain in gains[:repeats]:
        run.add(gain)
    if run.n < repeats:
        return run.verdict(False, False, f"batch: {run.n} of {repeats} runs")
    if not all(math.isfinite(g) for g in gains[:repeats]):
        return run.verdict(True, False, "not kept: a non-finite gain in the batch")
    std = math.sqrt(run.var)
    if run.mean > 0 and run.mean > std:
        return run.verdict(True, True, f"kept: mean gain {run.mean:.4g} > 1 std {std:.4g} over {run.n} runs")
    if run.mean > 0:
        return run.verdict(True, False, f"not kept: mean gain {run.mean:.4g} within 1 std {std:.4g}")
    return run.verdict(True, False, f"not kept: mean gain {run.mean:.4g} <= 0 over {run.n} runs")


# --- paired seeds and the incumbent's cache


class SeedSchedule:
    """Which METAEXP_SEED the i-th run uses; the same for every commit compared within a block.

    block: move to a fresh block (e.g. the number of keeps so far) when the incumbent changes,
    so that it is compared on seeds it was not selected on. Reusing a kept candidate's own
    runs as the incumbent's cache is cheaper but biased: it was kept because those runs were
    lucky (bench/noise.py measures both).
    """

    def __init__(self, base_seed: int, block: int = 0) -> None:
        if not 0 <= base_seed < 2**31:
            raise SpecError(f"base_seed must be in [0, 2**31), got {base_seed}")
        if block < 0:
            raise SpecError(f"seed block must be >= 0, got {block}")
        self.base_seed = base_seed
        self.block = block

    def seed(self, i: int) -> int:
        if not 0 <= i < SEEDS_PER_BLOCK:
            raise SpecError(f"seed index must be in [0, {SEEDS_PER_BLOCK}), got {i}")
        # harnesses hand the seed to numpy/torch, which want it below 2**32
        return (self.base_seed + self.block * SEEDS_PER_BLOCK + i) % 2**31

    def seeds(self, n: int) -> list[int]:
        return [self.seed(i) for i in range(n)]


class IncumbentCache:
    """Per-seed metric values of an incumbent commit, extended lazily.

    Each seed costs the incumbent one evaluation, once.
    """

    def __init__(self) -> None:
        self._values: dict[str, dict[int, float]] = {}

    def get(self, commit: str, seed: int) -> float | None:
        return self._values.get(commit, {}).get(seed)

    def put(self, commit: str, seed: int, value: float) -> None:
        """Record a measurement; a later one for the same seed replaces it."""
        if not math.isfinite(value):
            raise ValueError(f"IncumbentCache takes finite values only, got {value} for {commit} seed {seed}")
        self._values.setdefault(commit, {})[seed] = float(value)

    def seeds(self, commit: str) -> list[int]:
        return sorted(self._values.get(commit, {}))

    def values_for(self, commit: str) -> dict[int, float]:
        """A copy of one commit's values by seed (to hand to a worker)."""
        return dict(self._values.get(commit, {}))

    def to_dict(self) -> dict[str, dict[str, float]]:
        """JSON-ready: {commit: {str(seed): value}}."""
        return {commit: {str(s): v for s, v in sorted(vals.items())} for commit, vals in self._values.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, float]]) -> IncumbentCache:
        cache = cls()
        for commit, vals in data.items():
            for seed, value in vals.items():
                cache.put(commit, int(seed), float(value))
        return cache
