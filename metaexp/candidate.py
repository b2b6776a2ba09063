"""The candidate: one change a lineage asks to be tried, and what can be said of its target files
(size, diff, identity, whether they parse, and the composition of two commits by git's three-way
merge).

An operator returns the change (parent, changed files, description, values); the lineage that asked
for it fills in where it comes from (which lineage, its proposal count, the parent's files) and how
it is to be judged (an escape, the draw that decides an exploration). Every later step reads the
same object: preparing (commit, checks, duplicates), evaluating, deciding, recording.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from metaexp.record.git import Git
    from metaexp.spec.space import Param

Kind = Literal["baseline", "change", "crossover", "invalid", "rejected"]


@dataclass(frozen=True)
class Knob:
    """A numeric constant the hybrid operator's tuning may move (metaexp/operators/knobs.py)."""

    name: str
    path: str
    param: Param
    source: str  # space | marker | constant


@dataclass(frozen=True)
class TunePlan:
    """What a candidate asks to be tuned before it is judged: its knobs, with which sampler, how
    many runs (metaexp/operators/tuning.py)."""

    knobs: dict[str, Knob]
    sampler: str
    budget: int
    seed: int  # the sampler's seed
    radius: float = 0.25  # the box's half-width around the written values, as a share of each range


@dataclass(frozen=True)
class Candidate:
    parent: str  # the commit it changes
    files: dict[str, bytes]  # only the files that change, with their new contents
    description: str  # what changed, e.g. "LEARNING_RATE 3e-3 → 4.2e-3"
    style: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # the values it evaluates, by name
    extra: dict[str, Any] = field(default_factory=dict)  # operator state kept in the record
    usage: dict[str, float] = field(default_factory=dict)  # LLM calls, tokens and cost_usd
    tune: TunePlan | None = None  # hybrid: tune these constants before the decision
    # --- filled in by the lineage that asked for it
    kind: Kind = "change"  # invalid / rejected: the operator could not propose; crossover: to compose
    lineage: int = 0  # the island it belongs to (0 in a single lineage)
    generation: int = 0  # the lineage's own count of proposals before this one
    parent_files: dict[str, bytes] = field(default_factory=dict)  # every target file of the parent
    escape: bool = False  # proposed to leave a stagnating population: accepted if it runs
    other: str | None = None  # crossover: the second parent
    alternatives: tuple[tuple[str, str], ...] = ()  # crossover: more pairs to merge if this one fails
    reason: str = ""  # invalid / rejected: why
    draw: float = 1.0  # the lineage's uniform draw in [0, 1) that an exploration is decided by

    @property
    def tree(self) -> dict[str, bytes]:
        """Every target file of the child."""
        return {**self.parent_files, **self.files}

    @property
    def before(self) -> dict[str, bytes]:
        """The parent's version of each changed file (empty for a new file)."""
        return {p: self.parent_files.get(p, b"") for p in self.files}

    @property
    def parents(self) -> list[str]:
        return [self.parent, self.other] if self.other else [self.parent]


def line_count(tree: Mapping[str, bytes]) -> int:
    return sum(content.count(b"\n") for content in tree.values())


def diff_lines(before: Mapping[str, bytes], changed: Mapping[str, bytes]) -> int:
    """Lines added plus lines removed in the changed files (a missing file counts as empty)."""
    total = 0
    for path, new in changed.items():
        old = before.get(path, b"").decode(errors="replace").splitlines()
        diff = difflib.unified_diff(old, new.decode(errors="replace").splitlines(), lineterm="", n=0)
        total += sum(1 for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---")))
    return total


def malformed(changed: Mapping[str, bytes]) -> str | None:
    """Why a changed file does not parse as what its name says (Python, YAML, JSON, TOML), before
    anything runs it; None when every one does (other files are not checked)."""
    import ast
    import json
    import tomllib
    import warnings

    import yaml

    for path, data in sorted(changed.items()):
        suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
        if suffix not in ("py", "yaml", "yml", "json", "toml"):
            continue
        try:
            text = data.decode()
            if suffix == "py":
                with warnings.catch_warnings():  # invalid escapes and the like: not our business
                    warnings.simplefilter("ignore")
                    ast.parse(text, filename=path)
            elif suffix in ("yaml", "yml"):
                list(yaml.safe_load_all(text))
            elif suffix == "json":
                json.loads(text)
            elif suffix == "toml":
                tomllib.loads(text)
        except UnicodeDecodeError as exc:
            return f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        except SyntaxError as exc:
            where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
            return f"{path} does not parse as Python: {exc.msg} ({where})"
        except (yaml.YAMLError, json.JSONDecodeError, tomllib.TOMLDecodeError, ValueError) as exc:
            kind = {"json": "JSON", "toml": "TOML"}.get(suffix, "YAML")
            return f"{path} does not parse as {kind}: " + " ".join(str(exc).split())[:300]
    return None


def fingerprint(tree: Mapping[str, bytes]) -> str:
    """Equal for target files that differ only in whitespace: duplicates are not evaluated twice."""
    digest = hashlib.sha256()
    for path in sorted(tree):
        normalised = b"\n".join(b" ".join(line.split()) for line in tree[path].splitlines() if line.strip())
        digest.update(path.encode() + b"\0" + normalised + b"\0")
    return digest.hexdigest()


def compose(
    git: Git, targets: list[str], ours: str, theirs: str
) -> tuple[dict[str, bytes], dict[str, bytes]] | str:
    """The target files of a three-way merge of two commits (relative to their merge base):
    (every target file of `ours`, the files the merge changes in it), or why there is none."""
    tree, conflicts = git.merge(ours, theirs)
    if tree is None:
        return f"merge conflict in {', '.join(conflicts) or 'the target'}"
    merged_listing, our_listing = git.listing(tree), git.listing(ours)
    merged = {p: git.blob(merged_listing[p].sha) for p in targets if p in merged_listing}
    parent = {p: git.blob(our_listing[p].sha) for p in targets if p in our_listing}
    changed = {p: c for p, c in merged.items() if parent.get(p) != c}
    if not changed:
        return "the merge changes nothing"
    return parent, changed
