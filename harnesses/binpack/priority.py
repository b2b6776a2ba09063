"""The target: the priority function of an online bin packer (FunSearch's setting).

evaluate.py (immutable) packs the items one at a time, in the order they arrive: each item
goes to the feasible bin (remaining capacity >= item) with the highest score; a new bin is
opened only when no open bin fits. Ties go to the bin opened first.

The constants are the weights of a few terms; the offline operators tune them within
search_spaces/binpack.yaml. An LLM may also rewrite the function itself.
"""

import numpy as np

W_RESIDUAL = 1.0  # weight of the space left in the bin after placing the item (in units of 100)
W_RESIDUAL_SQ = 0.0  # weight of that leftover squared: with W_RESIDUAL it sets a preferred leftover
W_EXACT = 0.0  # bonus for a perfect fit (nothing left)
W_DEAD = 0.0  # bonus (negative: penalty) for leaving a gap smaller than DEAD_GAP
DEAD_GAP = 10  # leftovers in (0, DEAD_GAP) count as dead space


def priority(item: float, remaining_capacities: np.ndarray) -> np.ndarray:
    """A score per feasible bin; `remaining_capacities` are those bins' free space."""
    leftover = remaining_capacities - item
    r = leftover / 100.0
    score = W_RESIDUAL * r + W_RESIDUAL_SQ * r * r
    score = score + W_EXACT * (leftover == 0)
    score = score + W_DEAD * ((leftover > 0) & (leftover < DEAD_GAP))
    return score
