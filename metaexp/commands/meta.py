"""metaexp meta SPEC --space FILE: an outer Optuna study over strategies, each trial a full inner run."""

from __future__ import annotations

import argparse
from pathlib import Path

from metaexp.spec import load_spec


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("meta", help="tune the strategy itself: an outer study over inner runs")
    p.add_argument("spec", help="the spec YAML (its budget is each inner run's; its meta: block the study's)")
    p.add_argument("--space", help="strategy space YAML: distributions over dotted spec keys (or meta.space)")
    p.add_argument("--trials", type=int, help="outer trials in all (or meta.trials)")
    p.add_argument("--parallel", type=int, help="outer trials at once, on Ray (or meta.parallel)")
    p.add_argument("--repeats", type=int, help="inner seeds per strategy; the value is their mean")
    p.add_argument("--resume", action="store_true", help="continue a killed or finished outer study")


def run(args: argparse.Namespace) -> int:
    from metaexp.meta.outer import plan_meta, run_meta

    spec = load_spec(args.spec)
    plan = plan_meta(
        spec,
        Path(args.spec),
        space=str(Path(args.space).resolve()) if args.space and Path(args.space).exists() else args.space,
        trials=args.trials,
        parallel=args.parallel,
        repeats=args.repeats,
    )
    result = run_meta(plan, resume=args.resume)
    return 130 if result.interrupted else 0
