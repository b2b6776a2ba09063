"""Immutable harness: a shifted quadratic bowl in three variables, optimum loss 0.0.

Prints the metric contract block that metaexp reads:
    ---
    loss: 1.234567
"""

import importlib.util
import os
import sys

OPTIMUM = {"X": 1.5, "Y": -0.5, "WIDTH": 12}
SCALE = {"X": 1.0, "Y": 1.0, "WIDTH": 0.1}  # loss per unit squared


def load_target():
    spec = importlib.util.spec_from_file_location("params", os.path.join(os.getcwd(), "params.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    params = load_target()
    loss = sum(SCALE[k] * (float(getattr(params, k)) - v) ** 2 for k, v in OPTIMUM.items())
    print("---")
    print(f"loss: {loss:.6f}")
    print(f"experiment: {os.environ.get('METAEXP_EXPERIMENT', '?')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
