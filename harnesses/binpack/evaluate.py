"""Immutable harness: online bin packing with the priority function in priority.py.

Instances follow OR-Library's uniform class (binpack1-4, "u" instances): bin capacity 150,
integer item sizes drawn uniformly from [20, 100]. Five instances of 500 items are generated
from fixed seeds, identically on every run. Each item, in arrival order, goes to the
feasible open bin with the highest priority (the first such bin on ties), or to a new bin
when none fits.

Prints the metric contract block that metaexp reads:
    ---
    excess_bins: 4.123   (mean over instances of 100 * (bins - L1) / L1, L1 = ceil(sum / capacity))
    pack_ms: 31.2        (time to pack all instances, best of REPEATS)
A priority function that raises, returns the wrong shape or non-finite scores exits 1.
"""

import importlib.util
import math
import os
import random
import sys
import time

import numpy as np

CAPACITY = 150
ITEM_LOW, ITEM_HIGH = 20, 100
N_ITEMS = 500
SEEDS = (1, 2, 3, 4, 5)
REPEATS = 3


def instances() -> list[list[int]]:
    rngs = [random.Random(seed) for seed in SEEDS]
    return [[rng.randint(ITEM_LOW, ITEM_HIGH) for _ in range(N_ITEMS)] for rng in rngs]


def load_target():
    spec = importlib.util.spec_from_file_location("priority", os.path.join(os.getcwd(), "priority.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.priority


def pack(items: list[int], priority) -> int:
    """The number of bins the online packer opens."""
    bins = np.zeros(len(items), dtype=float)  # remaining capacities; the first `used` are open
    used = 0
    for item in items:
        feasible = np.nonzero(bins[:used] >= item)[0]
        if feasible.size == 0:
            bins[used] = CAPACITY - item
            used += 1
            continue
        scores = np.asarray(priority(float(item), bins[feasible].copy()), dtype=float)
        if scores.shape != feasible.shape:
            raise ValueError(f"priority returned shape {scores.shape} for {feasible.size} bins")
        if not np.all(np.isfinite(scores)):
            raise ValueError("priority returned a non-finite score")
        bins[feasible[int(np.argmax(scores))]] -= item
    return used


def main() -> int:
    priority = load_target()
    data = instances()
    best_s, counts = math.inf, None
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        got = [pack(items, priority) for items in data]
        best_s = min(best_s, time.perf_counter() - t0)
        if counts is not None and got != counts:
            raise RuntimeError(f"priority is not deterministic: {counts} then {got}")
        counts = got
    excess = []
    for items, n in zip(data, counts, strict=True):
        lower = math.ceil(sum(items) / CAPACITY)
        excess.append(100.0 * (n - lower) / lower)
    print("---")
    print(f"excess_bins: {sum(excess) / len(excess):.4f}")
    print(f"pack_ms: {1000 * best_s:.2f}")
    print(f"bins: {sum(counts)}")
    print(f"lower_bound: {sum(math.ceil(sum(items) / CAPACITY) for items in data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
