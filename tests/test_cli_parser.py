"""`metaexp COMMAND` imports only its own command's module; `metaexp --help` still lists them all."""

from __future__ import annotations

import subprocess
import sys

from metaexp.cli import COMMANDS

CHILD = """
import sys
from metaexp.cli import build_parser
parser = build_parser(sys.argv[1:])
loaded = sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("metaexp.commands."))
print(" ".join(loaded))
"""


def _loaded(*argv: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, timeout=120, check=True
    )
    return proc.stdout.split()


def test_a_command_builds_only_its_own_subparser() -> None:
    assert _loaded("run", "metaexp.yaml") == ["run"]
    assert _loaded("status", "metaexp.yaml", "-n", "3") == ["status"]


def test_no_command_or_an_unknown_one_gets_every_command() -> None:
    assert _loaded() == sorted(COMMANDS)
    assert _loaded("--version") == sorted(COMMANDS)
    assert _loaded("rn") == sorted(COMMANDS)


def test_help_lists_every_command_and_a_typo_names_the_choices() -> None:
    top = subprocess.run([sys.executable, "-m", "metaexp", "--help"], capture_output=True, text=True)
    assert top.returncode == 0
    assert all(name in top.stdout for name in COMMANDS)
    typo = subprocess.run([sys.executable, "-m", "metaexp", "rn", "x"], capture_output=True, text=True)
    assert typo.returncode == 2
    assert "invalid choice: 'rn'" in typo.stderr and "'run'" in typo.stderr
    sub = subprocess.run([sys.executable, "-m", "metaexp", "run", "--help"], capture_output=True, text=True)
    assert sub.returncode == 0 and "usage: metaexp run" in sub.stdout
