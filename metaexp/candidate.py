"""What can be said of a candidate's target files: its size, its diff, its identity, and the
composition of two candidates by git's three-way merge (crossover, `metaexp merge`)."""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping

from metaexp.record.git import Git


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


def fingerprint(tree: Mapping[str, bytes]) -> str:
    """Equal for target files that differ only in whitespace: duplicates are not evaluated twice."""
    digest = hashlib.sha256()
    for path in sorted(tree):
        normalised = b"\n".join(b" ".join(line.split()) for line in tree[path].splitlines() if line.strip())
        digest.update(path.encode() + b"\0" + normalised + b"\0")
    return digest.hexdigest()


def compose(
    git: Git, targets: list[str], ours: str, theirs: str
) -> tuple[dict[str, bytes], dict[str, bytes], dict[str, bytes]] | str:
    """The target files of a three-way merge of two commits (relative to their merge base):
    (every target file, the changed ones, their versions in `ours`), or why there is none."""
    tree, conflicts = git.merge(ours, theirs)
    if tree is None:
        return f"merge conflict in {', '.join(conflicts) or 'the target'}"
    merged_listing, our_listing = git.listing(tree), git.listing(ours)
    merged = {p: git.blob(merged_listing[p].sha) for p in targets if p in merged_listing}
    parent = {p: git.blob(our_listing[p].sha) for p in targets if p in our_listing}
    changed = {p: c for p, c in merged.items() if parent.get(p) != c}
    if not changed:
        return "the merge changes nothing"
    return merged, changed, {p: parent.get(p, b"") for p in changed}
