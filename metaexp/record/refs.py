"""The named refs a run's records imply, so a ledger repairs them after a kill.

Every try:        refs/metaexp/<tag>/tried/<n>         its commit
A single lineage: refs/heads/autoexp/<tag>             the last accepted try (the run's worktree follows it)
                  refs/metaexp/<tag>/best              the best so far
A population:     refs/heads/autoexp/<tag>/island-<k>  each island's best individual
                  refs/heads/autoexp/<tag>/best        the best so far

git cannot hold a branch autoexp/<tag> beside autoexp/<tag>/..., so a tag is one layout or the other.
"""

from __future__ import annotations

from collections.abc import Iterable

from metaexp.record.records import ExperimentRecord
from metaexp.spec import Spec


def branch(tag: str) -> str:
    """A single lineage's branch."""
    return f"refs/heads/autoexp/{tag}"


def prefix(tag: str) -> str:
    """Where a run's own refs live (tried/<n>, and a single lineage's best)."""
    return f"refs/metaexp/{tag}"


def island_branch(tag: str, k: int) -> str:
    return f"refs/heads/autoexp/{tag}/island-{k}"


def best_ref(spec: Spec) -> str:
    tag = spec.tag
    return f"refs/heads/autoexp/{tag}/best" if spec.strategy.is_population else f"{prefix(tag)}/best"


def tried(records: Iterable[ExperimentRecord]) -> dict[int, str]:
    """Experiment number -> its commit, for every try that made one."""
    return {rec.n: rec.commit for rec in records if rec.commit}


def current(records: Iterable[ExperimentRecord]) -> str | None:
    """A single lineage's current commit: its last accepted try."""
    accepted = [rec.commit for rec in records if rec.status.accepted]
    return accepted[-1] if accepted else None


def best_commit(records: Iterable[ExperimentRecord]) -> str | None:
    best = [rec.commit for rec in records if rec.best and rec.commit]
    return best[-1] if best else None


def run_refs(spec: Spec, records: list[ExperimentRecord]) -> dict[str, str]:
    """Every named ref (not tried/<n>) the records imply, in the spec's layout."""
    if spec.strategy.is_population:
        return population_refs(spec, records)
    refs = {branch(spec.tag): current(records), best_ref(spec): best_commit(records)}
    return {ref: sha for ref, sha in refs.items() if sha}


def population_refs(spec: Spec, records: list[ExperimentRecord]) -> dict[str, str]:
    """Each island's best (replayed from the records) and the global best."""
    from metaexp.decide.population import replay

    refs: dict[str, str] = {}
    for k, pop in enumerate(replay(spec, records, spec.strategy.island_count)):
        top = pop.best()
        if top is not None:
            refs[island_branch(spec.tag, k)] = top.commit
    best = best_commit(records)
    if best is not None:
        refs[best_ref(spec)] = best
    return refs
