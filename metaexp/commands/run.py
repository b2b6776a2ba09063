"""metaexp run SPEC: run (or resume) the experiments."""

from __future__ import annotations

import argparse

from metaexp.spec import load_spec


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the loop; running it again resumes")
    p.add_argument("spec", help="the spec YAML")


def run(args: argparse.Namespace) -> int:
    from metaexp.run import run as run_spec

    result = run_spec(load_spec(args.spec))
    if result.interrupted:
        return 130
    return 1 if result.aborted else 0
