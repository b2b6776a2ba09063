"""Reading metrics from a harness's output: the last `name: value` line wins."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from metaexp.spec import MetricSpec

NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|NaN|inf|Infinity|-inf)"


def default_pattern(name: str) -> str:
    return rf"^\s*{re.escape(name)}\s*[:=]\s*({NUMBER})\s*$"


def parse_metrics(output: str, metrics: Mapping[str, MetricSpec]) -> tuple[dict[str, float], str]:
    """The values found, and a reason naming the first metric missing or not finite ("" if none)."""
    values: dict[str, float] = {}
    problem = ""
    for name, spec in metrics.items():
        matches = re.findall(spec.pattern or default_pattern(name), output, flags=re.MULTILINE)
        if not matches:
            problem = problem or f"metric {name!r} not found in the output"
            continue
        raw = matches[-1] if isinstance(matches[-1], str) else matches[-1][0]
        try:
            value = float(raw)
        except ValueError:
            problem = problem or f"metric {name!r}: {raw!r} is not a number"
            continue
        if not math.isfinite(value):
            problem = problem or f"metric {name!r} is {raw}"
            continue
        values[name] = value
    return values, problem
