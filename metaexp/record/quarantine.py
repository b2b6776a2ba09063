"""A ledger trusts only lines it could have written: experiment numbers 1, 2, 3, ... in order, each
line's commit the one its `tried/<n>` ref names (or, for the last lines before a kill, before their
refs were written, a commit that exists). Any other line (a forged one, a number twice, a gap) is
moved to experiments.quarantine.jsonl, never silently trusted, and the run says so."""

from __future__ import annotations

import json
import os
from pathlib import Path

from metaexp.record.git import Git
from metaexp.record.records import ExperimentRecord


def trusted(records: list[ExperimentRecord], git: Git, prefix: str) -> tuple[list, list]:
    """(the records kept, the records quarantined); `prefix`: the run's refs (refs/metaexp/<tag>)."""
    refs = git.refs(f"{prefix}/tried/")
    kept: list[ExperimentRecord] = []
    dropped: list[ExperimentRecord] = []
    for rec in records:
        ref = refs.get(f"{prefix}/tried/{rec.n}")
        consistent = rec.commit is None or ref == rec.commit or (ref is None and _exists(git, rec.commit))
        (kept if rec.n == len(kept) + 1 and consistent else dropped).append(rec)
    return kept, dropped


def quarantine(jsonl: Path, kept: list[ExperimentRecord], dropped: list[ExperimentRecord]) -> Path:
    """Move the dropped lines aside (appended to experiments.quarantine.jsonl) and rewrite the ledger
    with the kept ones, atomically."""
    aside = jsonl.with_name("experiments.quarantine.jsonl")
    with aside.open("a") as fh:
        for rec in dropped:
            fh.write(
                json.dumps({"quarantined": "not a line this run wrote", **json.loads(rec.to_json())}) + "\n"
            )
    tmp = jsonl.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(rec.to_json() + "\n" for rec in kept))
    os.replace(tmp, jsonl)
    return aside


def _exists(git: Git, commit: str) -> bool:
    return (
        git.run("cat-file", "-e", f"{commit}^{{commit}}", check=False) == "" and git.resolve(commit) == commit
    )
