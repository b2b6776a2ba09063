"""The command line: one module per subcommand; errors map to exit codes here only."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

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


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; for `metaexp COMMAND ...` only COMMAND's subparser, so a run imports its own
    command's module and not the eleven others (their imports, pydantic's judges and merge models
    among them, cost ~0.1 s of every start). With no known command (`metaexp`, `--help`, a typo) it
    has them all, so the usage lists every command and a typo gets argparse's choices."""
    parser = argparse.ArgumentParser(
        prog="metaexp", description="Declarative meta-optimiser for autoresearch-style experiment loops."
    )
    parser.add_argument("--version", action="version", version=f"metaexp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    args = list(sys.argv[1:] if argv is None else argv)
    named = args[0] if args and args[0] in COMMANDS else None
    for name in [named] if named else COMMANDS:
        _module(name).add_parser(sub)
    return parser


def _module(name: str):
    import importlib

    return importlib.import_module(f"metaexp.commands.{name}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
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


def entry() -> NoReturn:
    """The `metaexp` command: main(), then an exit without the interpreter's teardown. Freeing the
    ~1,300 modules a run imports (numpy, scipy, optuna) took 0.3-0.5 s after its last line, a tenth
    of a cheap 200-evaluation run. The atexit handlers still run (Ray's shutdown, a study's worker
    pool, the sandbox trees' cleanup) and stdout and stderr are flushed; a live non-daemon thread,
    which a normal exit would wait for, gets the normal exit."""
    code = main()
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if any(t.is_alive() for t in others):
        sys.exit(code)
    atexit._run_exitfuncs()  # what Py_Finalize runs first
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe (`metaexp status | head`)
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
