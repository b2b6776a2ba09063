"""The models an llm operator asks: one (`operator.model`) or several (`operator.models`), one chosen
per proposal by `operator.choice`: `weighted` draws by weight from the proposal's RNG; `bandit` is
UCB1 over the lineage's history, rewarded by improvement per dollar (per proposal where a model has
no prices), an untried model first. Every row names the model that proposed it (`extra.model`), so
a resumed run chooses as an uninterrupted one would, and `metaexp report` shows each model's
improvements and cost.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from metaexp.llm import LLMClient
from metaexp.record.records import ExperimentRecord, Status
from metaexp.spec.operator import ModelSpec, OperatorSpec


class Models:
    def __init__(self, op: OperatorSpec, make: Callable[[str, str | None, object], LLMClient]) -> None:
        """`make(model, base_url, prices)`: a client for one model."""
        specs = op.models or [ModelSpec(model=op.model or "")]
        self.choice = op.choice
        self.weights = {m.model: m.weight for m in specs}
        self.clients = {
            m.model: make(m.model, m.base_url or op.base_url, m.prices or op.prices) for m in specs
        }

    @property
    def several(self) -> bool:
        return len(self.clients) > 1

    @property
    def first(self) -> LLMClient:
        return next(iter(self.clients.values()))

    def choose(self, rng: random.Random, history: Sequence[ExperimentRecord], sign: float) -> str:
        """The model for this proposal (a single model draws nothing from `rng`)."""
        names = list(self.clients)
        if not self.several:
            return names[0]
        if self.choice == "weighted":
            return rng.choices(names, weights=[self.weights[n] for n in names])[0]
        return ucb(names, history, sign)


def ucb(names: list[str], history: Sequence[ExperimentRecord], sign: float) -> str:
    """UCB1: the best mean reward (improvement per dollar, scaled to the best model's) plus the
    exploration bonus sqrt(2 ln N / n); a model never tried goes first."""
    tries = {n: 0 for n in names}
    gains = {n: 0.0 for n in names}
    costs = {n: 0.0 for n in names}
    best: float | None = None  # the lineage's best so far: what a keep improved on
    for rec in history:
        name = rec.extra.get("model")
        if name in tries:
            tries[name] += 1
            costs[name] += float(rec.usage.get("cost_usd", 0.0))
            if rec.status is Status.KEEP and rec.value is not None and best is not None:
                gains[name] += max(0.0, sign * (best - rec.value))
        accepted = rec.status.accepted or rec.n == 1
        if accepted and rec.value is not None and (best is None or sign * (best - rec.value) > 0):
            best = rec.value
    untried = [n for n in names if tries[n] == 0]
    if untried:
        return untried[0]
    rewards = {n: gains[n] / costs[n] if costs[n] > 0 else gains[n] / tries[n] for n in names}
    scale = max(rewards.values()) or 1.0
    total = sum(tries.values())
    return max(names, key=lambda n: rewards[n] / scale + math.sqrt(2 * math.log(total) / tries[n]))
