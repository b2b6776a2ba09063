"""metaexp report SPEC: progress.png, lineage.png and a summary of what was kept and what it gained."""

from __future__ import annotations

import argparse
import json

from metaexp.record.records import read_records
from metaexp.record.workspace import Workspace
from metaexp.report import (
    format_population,
    format_summary,
    format_validation,
    plot_progress,
    plot_validation,
    summarize,
)
from metaexp.report.archive import plot_archive
from metaexp.report.lineage_plot import plot_lineage
from metaexp.spec import load_spec


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write progress.png and lineage.png and print a summary")
    p.add_argument("spec", help="the spec YAML")
    p.add_argument("-o", "--output", help="image path (default .metaexp/<tag>/progress.png)")


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    ws = Workspace(spec.root, spec.tag)
    records = read_records(ws.out / "experiments.jsonl")
    from metaexp.meta.report import meta_dir, meta_report

    if meta_dir(spec) is not None:  # `metaexp meta` ran for this spec: its outer study first
        print(meta_report(spec, args.output))
        if not records:
            return 0
        print()
    metric = spec.objective.primary
    summary = summarize(records, spec.direction, metric)
    print(format_summary(summary, metric))
    if (stop := ws.last_stop()) is not None:
        print(stop)
    population = ws.out / "population.json"
    if population.exists():
        data = json.loads(population.read_text())
        print("\n" + format_population(data, metric))
        drawn = plot_archive(data, metric, spec.direction, ws.out / "archive.png")
        if drawn:
            print(f"wrote {drawn}")
    if records:
        path = plot_progress(
            records,
            spec.direction,
            metric,
            args.output or ws.out / "progress.png",
            title=f"metaexp {spec.tag}: {len(records)} experiments",
        )
        print(f"\nwrote {path}")
        if any(r.best for r in records):  # a run whose baseline failed has no best to trace
            tree = plot_lineage(
                records, spec.direction, metric, ws.out / "lineage.png", title=f"metaexp {spec.tag}"
            )
            print(f"wrote {tree} (the lineage of the best)")
        held_out = format_validation(records, metric)
        if held_out:
            print("\n" + held_out)
            print(f"wrote {plot_validation(records, metric, ws.out / 'validation.png')}")
    return 0
