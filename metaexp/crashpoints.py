"""Fault injection for the tests: METAEXP_CRASHPOINT=NAME kills the process that reaches point NAME.

Points: after-jsonl:<n>, after-tsv:<n>, after-artifacts:<n>, after-optuna:<n> (the ledger, recording
experiment n) and ask:<k> (lineage k, before each proposal). A lineage actor gets the driver's value
(cluster.py).
"""

from __future__ import annotations

import os
import signal

VARIABLE = "METAEXP_CRASHPOINT"


def crashpoint(name: str) -> None:
    """SIGKILL this process when METAEXP_CRASHPOINT names this point."""
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
