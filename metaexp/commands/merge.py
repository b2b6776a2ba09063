"""metaexp merge SPEC [--from TAG ...]: combine the winners of runs or islands, and check they compose."""

from __future__ import annotations

import argparse

from metaexp.record.workspace import Workspace
from metaexp.run.merge import describe, merge_sources, sources_for
from metaexp.spec import load_spec


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="merge the best commits of several runs (or islands) and evaluate")
    p.add_argument("spec", help="the spec YAML (its harness judges the combination)")
    p.add_argument(
        "--from", dest="tags", nargs="+", default=[], help="run tags (default: this run's islands)"
    )
    p.add_argument("--into", help="the combined branch is autoexp/INTO (default: <tag>-merged)")


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    ws = Workspace(spec.root, spec.tag)
    sources = sources_for(spec, ws, args.tags)
    result = merge_sources(spec, ws, sources, args.into or f"{spec.tag}-merged")
    print(describe(result, spec.objective.primary))
    return 0 if result.value is not None else 1
