"""metaexp show SPEC N: one try: its description, diff against its parent, metrics, log tail."""

from __future__ import annotations

import argparse
import json

from metaexp.errors import MetaexpError
from metaexp.record.records import read_records
from metaexp.record.workspace import Workspace
from metaexp.spec import load_spec

LOG_LINES = 30


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="one experiment in detail")
    p.add_argument("spec", help="the spec YAML")
    p.add_argument("n", type=int, help="the experiment number (1 = baseline)")


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    ws = Workspace(spec.root, spec.tag)
    records = read_records(ws.out / "experiments.jsonl")
    rec = next((r for r in records if r.n == args.n), None)
    if rec is None:
        raise MetaexpError(f"{spec.tag}: no experiment #{args.n} (there are {len(records)})")
    print(f"experiment #{rec.n}  {rec.status}  {rec.timestamp}")
    print(f"commit {rec.commit or '-'}  parent {rec.parent or '-'}")
    print(f"description: {rec.description}")
    if rec.reason:
        print(f"reason: {rec.reason}")
    print(f"metrics: {json.dumps(rec.metrics)}  value: {rec.value}")
    print(
        f"operator {rec.operator or '-'}  style {rec.style or '-'}  "
        f"params {json.dumps(rec.params, default=str)}"
    )
    print(f"wall {rec.wall_time_s:.2f}s  harness {rec.harness_s:.2f}s  diff lines {rec.diff_lines}")
    if rec.commit and rec.parent:
        print("\n--- diff against parent\n" + ws.git.diff(rec.parent, rec.commit).rstrip())
    log = ws.out / "logs" / f"{rec.n}.log"
    if log.exists():
        lines = log.read_text(errors="replace").splitlines()[-LOG_LINES:]
        print(f"\n--- log tail ({log})\n" + "\n".join(lines))
    elif rec.log_tail:
        print("\n--- log tail (from the record)\n" + rec.log_tail)
    return 0
