"""metaexp run SPEC: run (or resume) the experiment loop."""

from __future__ import annotations

import argparse

from metaexp.run.loop import Loop
from metaexp.spec import load_spec


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the loop; running it again resumes")
    p.add_argument("spec", help="the spec YAML")


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    if spec.pipeline:
        from metaexp.run.pipeline import run_pipeline

        result = run_pipeline(spec)
    elif spec.strategy.is_population:
        from metaexp.run.islands import PopulationLoop

        result = PopulationLoop(spec).run()
    else:
        result = Loop(spec).run()
    if result.interrupted:
        return 130
    return 1 if result.aborted else 0
