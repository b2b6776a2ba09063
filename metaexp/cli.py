"""The command line: one module per subcommand; errors map to exit codes here only."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from metaexp import __version__
from metaexp.errors import MetaexpError

COMMANDS = (
    "init",
    "validate",
    "schema",
    "run",
    "status",
    "show",
    "report",
    "merge",
    "judges",
    "meta",
    "dashboard",
    "study",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metaexp", description="Declarative meta-optimiser for autoresearch-style experiment loops."
    )
    parser.add_argument("--version", action="version", version=f"metaexp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = _module(name)
        module.add_parser(sub)
    return parser


def _module(name: str):
    import importlib

    return importlib.import_module(f"metaexp.commands.{name}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(_module(args.command).run(args) or 0)
    except MetaexpError as exc:
        print(f"metaexp: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("metaexp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `metaexp status | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
