"""Executing one run of a study, in the driver (serial) or in a worker process (parallel).

`execute` runs (or resumes) the run and says how it ended as plain data (an `Outcome`), so the
same code serves both: nothing but the outcome travels back from a worker, and the run's figures
are read from its ledger afterwards either way.
"""

from __future__ import annotations

import io
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from metaexp.errors import MetaexpError

if TYPE_CHECKING:
    from metaexp.spec import Spec

__all__ = ["Outcome", "Prefixed", "execute"]

TAIL_LINES = 5  # of a failed run's progress lines, shown with its error


@dataclass(frozen=True)
class Outcome:
    """How one run ended: finished or stopped (`interrupted`: by Ctrl-C), failed (`error`: one
    line, `tail`: its last progress lines), or refused (`fatal`: a bad spec or state, which every
    other run would meet as well)."""

    seconds: float
    interrupted: bool = False
    error: str | None = None
    tail: str = ""
    fatal: MetaexpError | None = None


def execute(spec: Spec, live: TextIO | None) -> Outcome:
    """Run or resume `spec`; its progress lines go to `live` (None: kept for a failure's tail)."""
    from metaexp.run import run

    t0 = time.monotonic()
    buffer = io.StringIO()
    try:
        result = run(spec, out=live if live is not None else buffer)
    except MetaexpError as exc:
        return Outcome(time.monotonic() - t0, fatal=exc)
    except KeyboardInterrupt:  # before the run could take Ctrl-C itself (while it opened)
        return Outcome(time.monotonic() - t0, interrupted=True)
    except Exception as exc:  # a bug in one run: the others still run; this one resumes later
        why = (str(exc).strip().splitlines() or [""])[-1]  # a Ray error's last line is the cause
        tail = "".join(buffer.getvalue().splitlines(True)[-TAIL_LINES:])
        return Outcome(time.monotonic() - t0, error=f"{type(exc).__name__}: {why}", tail=tail)
    return Outcome(time.monotonic() - t0, interrupted=result.interrupted)


class Prefixed(io.TextIOBase):
    """A text stream that writes each line to `out` behind `prefix` (a run's lines, live, beside
    other runs' lines)."""

    def __init__(self, prefix: str, out: TextIO = sys.stderr) -> None:
        self.prefix, self.out, self._partial = prefix, out, ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self.out.write(f"{self.prefix}{line}\n")
        self.out.flush()
        return len(text)

    def flush(self) -> None:
        self.out.flush()
