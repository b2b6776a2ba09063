"""The experiment record: one line of experiments.jsonl, the source of truth."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any


class Status(StrEnum):
    KEEP = "keep"
    DISCARD = "discard"
    EXPLORE = "explore"
    ESCAPE = "escape"
    CRASH = "crash"
    TIMEOUT = "timeout"
    REJECTED = "rejected"
    INVALID = "invalid"
    MIGRATE = "migrate"

    @property
    def harness_ran(self) -> bool:
        return self not in (Status.REJECTED, Status.INVALID, Status.MIGRATE)

    @property
    def accepted(self) -> bool:
        """The lineage moved to (or the island admitted) this candidate."""
        return self in (Status.KEEP, Status.EXPLORE, Status.ESCAPE, Status.MIGRATE)

    @property
    def failed(self) -> bool:
        """No usable metric: an Optuna FAIL trial."""
        return self in (Status.CRASH, Status.TIMEOUT, Status.REJECTED, Status.INVALID)


@dataclass(frozen=True)
class ExperimentRecord:
    """One try. Field names are the jsonl keys; keep them stable."""

    n: int  # experiment number, 1 = the unchanged baseline
    commit: str | None  # None only for `invalid` (no change could be made)
    parent: str | None
    timestamp: str  # ISO 8601, UTC
    status: Status
    description: str
    metrics: dict[str, float] = field(default_factory=dict)
    value: float | None = None  # the decision metric (Optuna trial value)
    diff_lines: int = 0
    wall_time_s: float = 0.0  # seconds since recording the previous experiment began
    harness_s: float = 0.0  # time the harness itself ran, seconds
    operator: str = ""
    style: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    reason: str = ""  # why crash/timeout/rejected/invalid
    log_tail: str = ""
    best: bool = False  # a new best-so-far at the time it was recorded
    usage: dict[str, float] = field(default_factory=dict)  # LLM calls, tokens and cost_usd of this try
    island: int = 0
    generation: int = 0  # the island's own count of proposals when this one was made
    extra: dict[str, Any] = field(default_factory=dict)  # operator state etc.

    def to_json(self) -> str:
        data = asdict(self)
        data["status"] = str(self.status)
        return json.dumps(data, sort_keys=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["status"] = Status(known["status"])
        return cls(**known)


def timestamp() -> str:
    """A record's time: ISO 8601, UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_records(path: Path) -> list[ExperimentRecord]:
    """All complete lines of an experiments.jsonl; a torn last line is ignored."""
    if not path.exists():
        return []
    records = []
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break  # torn write from a kill: never counted
            records.append(ExperimentRecord.from_dict(json.loads(raw)))
    return records
