"""metaexp schema: the spec's JSON Schema, for YAML editors; operator.kind and strategy.selection
enumerate what is registered where it runs, installed plugins included."""

from __future__ import annotations

import argparse
import json

from metaexp.spec import json_schema


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("schema", help="print the JSON Schema of metaexp.yaml (with the installed plugins' names)")


def run(args: argparse.Namespace) -> int:
    del args
    print(json.dumps(json_schema(), indent=2))
    return 0
