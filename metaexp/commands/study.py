"""metaexp study SPEC: every strategy on every seed under one budget; success rates and curves."""

from __future__ import annotations

import argparse
import os

from metaexp.study import DEFAULT_STRATEGIES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="run strategies on many seeds against a known optimum (budget.target); rerun resumes",
    )
    p.add_argument("spec", help="the spec YAML; budget.target must be the known optimum")
    p.add_argument(
        "--strategies",
        nargs="+",
        default=list(DEFAULT_STRATEGIES),
        metavar="NAME",
        help="presets (hill_climb explore_exploit islands pbt) or strategy YAMLs",
    )
    p.add_argument("--seeds", type=_positive, default=20, help="runs per strategy (seeds spec.seed, +1, ...)")
    p.add_argument("--budget", type=_positive, help="evaluations per run (default: budget.max_experiments)")
    p.add_argument("--out", help="output folder (default .metaexp/<tag>-study/)")
    p.add_argument(
        "--parallel",
        type=_slots,
        default=1,
        metavar="W",
        help="runs at once, each in a worker process (default 1: one after another; auto: one per "
        "CPU this process may use); the figures do not depend on it",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show every run's experiment lines")


def _positive(text: str, what: str = "a whole number, 1 or more") -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{what}, not {text!r}")
    return value


def _slots(text: str) -> int:
    if text == "auto":
        return len(os.sched_getaffinity(0))
    return _positive(text, "a number of runs at once (1 or more) or auto")


def run(args: argparse.Namespace) -> int:
    from metaexp.study import format_table, run_study

    result = run_study(
        args.spec,
        args.strategies,
        args.seeds,
        args.budget,
        args.out,
        verbose=args.verbose,
        parallel=args.parallel,
    )
    if result.interrupted:
        return 130
    print(format_table(result.summary))
    print(f"wrote {result.out}/study.json, study.txt and study.png")
    return 1 if result.unfinished else 0
