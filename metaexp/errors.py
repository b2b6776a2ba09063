"""One root error with narrow subclasses; messages name the bad value and the fix."""

from __future__ import annotations


class MetaexpError(Exception):
    """Root of every error metaexp raises on purpose (exit code 1 in the CLI)."""


class SpecError(MetaexpError):
    """The spec (or a file it points to) is malformed."""


class TargetError(MetaexpError):
    """A named value cannot be found or rewritten in a target file."""


class WorkspaceError(MetaexpError):
    """Git or the run's working area is in a state we cannot work with."""


class LockError(WorkspaceError):
    """Another run with the same tag holds the lock."""


class LedgerError(MetaexpError):
    """The run's records are inconsistent in a way repair cannot fix."""
