"""Immutable harness: score the extraction rules in patterns.yaml against labelled.jsonl.

For every string and every labelled kind (date, price) the pattern of that kind is run with
re.finditer; the matches' texts, after the settings (min_length, max_per_string) are applied,
are compared with the labels as multisets. f1 is micro-averaged over all strings and kinds.
match_ms is the time of one pass of all patterns over all strings (compiled once), the best
of REPEATS measurements of PASSES passes each: the minimum is the least noisy estimate.

Prints the metric contract block that metaexp reads:
    ---
    f1: 0.812500
    match_ms: 0.4123
A pattern that does not compile, a kind that is not labelled, or a malformed patterns.yaml
exits 1 (a crash).
"""

import json
import math
import os
import re
import sys
import time
from collections import Counter

import yaml

KINDS = ("date", "price")
REPEATS = 7
PASSES = 5


def load_rules() -> tuple[dict[str, re.Pattern], int, int]:
    with open(os.path.join(os.getcwd(), "patterns.yaml"), encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    if not isinstance(spec, dict) or not isinstance(spec.get("patterns"), dict):
        raise ValueError("patterns.yaml: needs a mapping 'patterns: {kind: regex}'")
    unknown = set(spec["patterns"]) - set(KINDS)
    if unknown:
        raise ValueError(f"patterns.yaml: unknown kinds {sorted(unknown)} (labelled: {', '.join(KINDS)})")
    flags = re.IGNORECASE if _number(spec, "ignore_case") >= 0.5 else 0
    wrap = "(?<!\\w)(?:{})(?!\\w)" if _number(spec, "word_boundary") >= 0.5 else "{}"
    compiled = {kind: re.compile(wrap.format(str(rx)), flags) for kind, rx in spec["patterns"].items()}
    return compiled, round(_number(spec, "min_length")), round(_number(spec, "max_per_string"))


def _number(spec: dict, key: str) -> float:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"patterns.yaml: {key} must be a number, not {value!r}")
    return float(value)


def extract(rows: list[dict], rules: dict[str, re.Pattern], min_length: int, limit: int) -> list[dict]:
    out = []
    for row in rows:
        found = {}
        for kind, rx in rules.items():
            texts = [m.group(0) for m in rx.finditer(row["text"])]
            found[kind] = [t for t in texts if len(t) >= min_length][: max(limit, 0)]
        out.append(found)
    return out


def main() -> int:
    with open(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "labelled.jsonl"), encoding="utf-8"
    ) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rules, min_length, limit = load_rules()
    predicted = extract(rows, rules, min_length, limit)
    best_s = math.inf
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for _ in range(PASSES):
            extract(rows, rules, min_length, limit)
        best_s = min(best_s, (time.perf_counter() - t0) / PASSES)
    counts = {kind: Counter() for kind in KINDS}
    for row, found in zip(rows, predicted, strict=True):
        for kind in KINDS:
            pred, gold = Counter(found.get(kind, [])), Counter(row[kind])
            tp = sum((pred & gold).values())
            counts[kind].update(tp=tp, fp=sum(pred.values()) - tp, fn=sum(gold.values()) - tp)
    total = sum(counts.values(), Counter())
    print("---")
    for kind in KINDS:
        print(
            f"{kind}_f1: {_f1(counts[kind]):.6f}  (tp {counts[kind]['tp']}, fp {counts[kind]['fp']}, "
            f"fn {counts[kind]['fn']})"
        )
    print(f"f1: {_f1(total):.6f}")
    print(f"match_ms: {1000 * best_s:.4f}")
    return 0


def _f1(c: Counter) -> float:
    return 2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"]) if c["tp"] else 0.0


if __name__ == "__main__":
    sys.exit(main())
