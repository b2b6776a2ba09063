"""metaexp status SPEC: best so far, counts by status, the last rows."""

from __future__ import annotations

import argparse

from metaexp.record.records import read_records
from metaexp.record.workspace import Workspace
from metaexp.spec import Spec, load_spec


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="best so far, counts by status, last experiments")
    p.add_argument("spec", help="the spec YAML")
    p.add_argument("-n", "--last", type=int, default=10, help="how many recent rows (default 10)")


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    if spec.pipeline:
        from metaexp.run.pipeline import stages

        for i, stage in enumerate(stages(spec)):
            print(f"{'' if i == 0 else chr(10)}== stage {i + 1}: {stage.tag}")
            _status(stage, args)
        return 0
    return _status(spec, args)


def _status(spec: Spec, args: argparse.Namespace) -> int:
    ws = Workspace(spec.root, spec.tag)
    records = read_records(ws.out / "experiments.jsonl")
    if not records:
        print(f"{spec.tag}: no experiments yet (run: metaexp run {args.spec})")
        return 0
    counts: dict[str, int] = {}
    for rec in records:
        counts[str(rec.status)] = counts.get(str(rec.status), 0) + 1
    best = next((r for r in reversed(records) if r.best), None)
    metric = spec.objective.primary
    print(
        f"{spec.tag}: {len(records)} experiments; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )
    if (stop := ws.last_stop()) is not None:
        print(stop)
    if best is not None:
        print(
            f"best {metric} = {best.value:.6g} at #{best.n} ({(best.commit or '')[:7]}): {best.description}"
        )
        print(f"baseline {metric} = {records[0].value if records[0].value is not None else 'n/a'}")
    print(f"\n{'#':>4}  {'commit':7}  {'status':8}  {metric:>12}  description")
    for rec in records[-args.last :]:
        value = f"{rec.value:.6g}" if rec.value is not None else "-"
        text = rec.description if not rec.reason else f"{rec.description} ({rec.reason})"
        print(f"{rec.n:>4}  {(rec.commit or '-')[:7]:7}  {rec.status!s:8}  {value:>12}  {text[:90]}")
    return 0
