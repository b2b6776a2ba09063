"""Everything a run needs resolved from the spec, checked before anything is written.

`metaexp validate` runs exactly these checks, read-only, so a spec that
validates starts.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from metaexp.errors import SpecError
from metaexp.evaluate.isolation import isolation_for
from metaexp.operators import Context, Operator, make_operator
from metaexp.operators.styles import StyleMix
from metaexp.record.git import Entry, Git
from metaexp.record.records import ExperimentRecord
from metaexp.record.workspace import matches
from metaexp.resources import resolve_data_file, shorten
from metaexp.spec import Spec
from metaexp.spec.space import Space, load_space


def uncommitted_note(plan: Plan) -> str | None:
    """A note when target files in the checkout differ from the start commit and the start is HEAD:
    the run starts from the commit, so an edit not committed is not in it (said, not an error)."""
    if Git(plan.root).resolve("HEAD") != plan.start:
        return None
    changed = []
    for path, content in plan.target_files.items():
        try:
            if (plan.root / path).read_bytes() != content:
                changed.append(path)
        except OSError:
            changed.append(path)
    if not changed:
        return None
    return (
        f"note: {', '.join(changed)} in your checkout differ(s) from the start commit {plan.start[:7]};"
        " the run starts from the commit: commit the edit to include it"
    )


@dataclass(frozen=True)
class Plan:
    spec: Spec
    root: Path  # the repository's top level
    start: str  # the start commit's sha
    listing: dict[str, Entry]  # the start commit's tree
    target_files: dict[str, bytes]  # every target file at the start
    immutable: dict[str, str]  # path -> blob sha at the start
    space: Space | None
    styles: StyleMix

    def check_candidate(self, parent: Mapping[str, bytes], changed: Mapping[str, bytes]) -> str:
        """Why a candidate may not run ("" if it may): the harness and non-target files are off limits."""
        spec = self.spec
        frozen = sorted(p for p in changed if p in spec.frozen)
        if frozen:
            stage = spec.frozen[frozen[0]]
            return f"changes file(s) frozen by the earlier pipeline stage {stage!r}: {', '.join(frozen)}"
        immutable = [p for p in changed if p in self.immutable or matches(p, spec.harness.immutable)]
        if immutable:
            return f"changes immutable harness file(s): {', '.join(sorted(immutable))}"
        outside = [p for p in changed if not matches(p, self.target_files) and not matches(p, spec.target)]
        if outside:
            return f"changes files outside target: {', '.join(sorted(outside))}"
        if all(parent.get(p) == content for p, content in changed.items()):
            return "no change against its parent"
        return ""

    def operator(
        self,
        history: list[ExperimentRecord],
        files: dict[str, bytes],
        out: Path | None = None,
        lineage: int = 0,
    ) -> Operator:
        ctx = Context(self.spec, self.root, self.styles, self.space, history, files, out, lineage)
        return make_operator(ctx)


def make_plan(spec: Spec, start: str | None = None) -> Plan:
    """`start` overrides spec.start (a resumed run keeps the commit it started from)."""
    git = Git(spec.root)
    root = git.toplevel()
    git = Git(root)
    ref = start or spec.start
    sha = git.resolve(ref)
    if sha is None:
        raise SpecError(
            f"start: {ref!r} is not a commit, branch or tag in {root} "
            "(a run starts from a commit: commit the target and harness first)"
        )
    listing = git.listing(sha)
    files = {p: e for p, e in listing.items() if e.mode != "40000"}
    targets = _matching(files, spec.target, "target", sha)
    immutable = _matching(files, spec.harness.immutable, "harness.immutable", sha)
    overlap = sorted(set(targets) & set(immutable))
    if overlap:
        raise SpecError(
            f"harness.immutable: {', '.join(overlap)} also match target; a file is one or the other"
        )
    _check_command(spec, files, git.toplevel())
    target_files = {p: git.blob(files[p].sha) for p in targets}
    space = _space(spec, root)
    styles = StyleMix(spec.operator.style, root)
    plan = Plan(spec, root, sha, listing, target_files, {p: files[p].sha for p in immutable}, space, styles)
    plan.operator([], target_files)  # names in the space exist, the sampler can run
    isolation_for(spec.harness.sandbox, spec.harness.network)  # harness.sandbox required: the tool works
    return plan


def _matching(files: dict[str, Entry], patterns: list[str], key: str, sha: str) -> list[str]:
    found: list[str] = []
    for pattern in patterns:
        hits = [p for p in files if matches(p, [pattern])]
        if not hits:
            known = ", ".join(sorted(files)[:12])
            raise SpecError(
                f"{key}: {pattern!r} matches no file in the start commit {sha[:7]} (files: {known}); "
                "paths are relative to the repository root and must be committed"
            )
        found.extend(h for h in hits if h not in found)
    return found


def _check_command(spec: Spec, files: dict[str, Entry], root: Path) -> None:
    argv = spec.harness.argv
    program = argv[0]
    if "/" not in program and shutil.which(program) is None:
        raise SpecError(f"harness.command: program {program!r} not found on PATH")
    for arg in argv:
        looks_like_file = arg.endswith((".py", ".sh")) and not arg.startswith("-")
        if looks_like_file and not Path(arg).is_absolute() and arg.removeprefix("./") not in files:
            raise SpecError(f"harness.command: {arg!r} is not a file in the start commit")


def _space(spec: Spec, root: Path) -> Space | None:
    if not spec.operator.space:
        return None
    key = "operator.space"
    path = resolve_data_file(spec.operator.space, spec.root, key) or resolve_data_file(
        spec.operator.space, root, key
    )
    if path is None:
        raise SpecError(f"operator.space: file {shorten(spec.operator.space)!r} not found")
    return load_space(path, key)
