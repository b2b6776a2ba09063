"""Combine the winners of several runs (or islands) and check that their improvements compose.

Seed 004's parallel-branch strategy: agents tune different aspects on their own
branches; afterwards the best commits are merged into one branch, one after the
other (git's three-way merge against their common start), and the combination
is evaluated once to see whether the gains add up.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from metaexp.decide.objectives import Objective
from metaexp.errors import MetaexpError
from metaexp.evaluate.harness import evaluate
from metaexp.record.records import read_records
from metaexp.record.workspace import Workspace
from metaexp.run.plan import make_plan
from metaexp.spec import Spec


@dataclass(frozen=True)
class Source:
    name: str  # a run's tag, or "<tag>/island-<k>"
    commit: str
    value: float | None


@dataclass
class MergeResult:
    branch: str
    commit: str
    merged: list[Source] = field(default_factory=list)
    conflicts: list[tuple[Source, list[str]]] = field(default_factory=list)
    value: float | None = None
    reason: str = ""  # why the combination has no value (a crash, say)
    composes: bool = False  # better than every merged source on its own


def sources_for(spec: Spec, ws: Workspace, tags: list[str]) -> list[Source]:
    """The winners to merge: each tag's best, or by default the spec's own islands' bests."""
    if not tags:
        records = read_records(ws.out / "experiments.jsonl")
        islands = sorted({r.island for r in records})
        if len(islands) < 2:
            raise MetaexpError(
                f"{spec.tag}: not a population run with islands to merge; name runs with --from"
            )
        return [_island_best(ws, spec.tag, k, records) for k in islands]
    return [_run_best(ws, tag) for tag in tags]


def _island_best(ws: Workspace, tag: str, k: int, records: list) -> Source:
    commit = ws.git.resolve(f"refs/heads/autoexp/{tag}/island-{k}")
    if commit is None:
        raise MetaexpError(f"no branch autoexp/{tag}/island-{k}")
    value = next((r.value for r in records if r.commit == commit and r.value is not None), None)
    return Source(f"{tag}/island-{k}", commit, value)


def _run_best(ws: Workspace, tag: str) -> Source:
    records = read_records(ws.root / ".metaexp" / tag / "experiments.jsonl")
    best = next((r for r in reversed(records) if r.best and r.commit), None)
    if best is None or best.commit is None:
        raise MetaexpError(f"--from {tag}: no recorded best (is .metaexp/{tag}/experiments.jsonl there?)")
    return Source(tag, best.commit, best.value)


def merge_sources(spec: Spec, ws: Workspace, sources: list[Source], into: str) -> MergeResult:
    objective = Objective.of(spec)
    ranked = sorted(
        sources, key=lambda s: objective.sign * (s.value if s.value is not None else -1e300), reverse=True
    )
    plan = make_plan(spec)
    acc = plan.start
    result = MergeResult(f"autoexp/{into}", acc)
    for source in ranked:
        tree, conflicts = ws.git.merge(acc, source.commit)
        if tree is None:
            result.conflicts.append((source, conflicts))
            continue
        acc = ws.git.commit(tree, [acc, source.commit], f"metaexp merge: {source.name}\n")
        result.merged.append(source)
    result.commit = acc
    ws.git.update_refs({f"refs/heads/autoexp/{into}": acc})
    _evaluate(spec, ws, plan, result, objective)
    return result


def _evaluate(spec: Spec, ws: Workspace, plan: object, result: MergeResult, objective: Objective) -> None:
    listing = ws.git.listing(result.commit)
    files = {p: ws.git.blob(listing[p].sha) for p in plan.target_files if p in listing}  # type: ignore[attr-defined]
    base = ws.prepare_base(plan.start, plan.listing, sorted(plan.target_files))  # type: ignore[attr-defined]
    out = ws.root / ".metaexp" / result.branch.removeprefix("autoexp/")
    out.mkdir(parents=True, exist_ok=True)
    outcome = evaluate(spec, base, 0, files, out / "merge.log")
    if outcome.status is not None:
        result.reason = f"{outcome.status}: {outcome.reason}"
    else:
        result.value = objective.value(outcome.metrics)
        values = [s.value for s in result.merged if s.value is not None]
        result.composes = (
            bool(values)
            and result.value is not None
            and all(objective.gain(result.value, v) > 0 for v in values)
        )
    (out / "merge.json").write_text(json.dumps(asdict(result), indent=2, default=str))


def describe(result: MergeResult, metric: str) -> str:
    lines = [f"{'source':<28} {'commit':7}  {metric:>12}"]
    for s in result.merged:
        lines.append(f"{s.name:<28} {s.commit[:7]}  {_num(s.value):>12}  merged")
    for s, paths in result.conflicts:
        lines.append(
            f"{s.name:<28} {s.commit[:7]}  {_num(s.value):>12}  skipped: conflict in {', '.join(paths)}"
        )
    combined = _num(result.value) if result.value is not None else result.reason
    lines.append(f"{'combined':<28} {result.commit[:7]}  {combined:>12}  branch {result.branch}")
    verdict = (
        "the improvements compose" if result.composes else "the combination is not better than each source"
    )
    lines.append(verdict)
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


__all__ = ["MergeResult", "Source", "describe", "merge_sources", "sources_for"]
