"""metaexp dashboard [SPEC]: optuna-dashboard on the run's Optuna storage (all runs' studies in it), with
the trials' artifacts (each try's diff, log tail and changed files)."""

from __future__ import annotations

import argparse
from pathlib import Path

from metaexp.report.dashboard import resolve, serve


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="start optuna-dashboard on the run's Optuna storage")
    p.add_argument("spec", nargs="?", help="the spec YAML (default: ./metaexp.yaml)")
    p.add_argument("--storage", help="an Optuna storage URL or journal file instead of the spec's")
    p.add_argument(
        "--artifact-dir", help="the trials' artifacts from this directory instead of the spec's store"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")


def run(args: argparse.Namespace) -> int:
    return serve(resolve(args.spec, args.storage, Path.cwd(), args.artifact_dir), args.host, args.port)
