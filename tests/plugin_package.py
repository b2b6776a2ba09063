"""A tiny plugin package, installed the way pip leaves one: a module and a `*.dist-info` directory
(METADATA, entry_points.txt) in a folder that importlib.metadata finds once it is on sys.path or
PYTHONPATH. It registers an operator (`demo_walk`: one constant of the space moved per proposal) and
a selection (`demo_newest`: the newest `size` members survive, so every child is kept)."""

from __future__ import annotations

from pathlib import Path

MODULE = "metaexp_demo_plugin"
OPERATOR, SELECTION, BROKEN = "demo_walk", "demo_newest", "demo_broken"

SOURCE = '''\
"""A metaexp plugin: an operator and a selection registered by entry points."""

from __future__ import annotations

from metaexp.candidate import Candidate
from metaexp.errors import SpecError
from metaexp.operators import InvalidProposal
from metaexp.operators.values import apply_values, locate_names, read_values


class Walk:
    """Moves one numeric constant of operator.space per proposal, by a Gaussian step in the unit
    cube (operator.options.step, scaled by the style)."""

    name = "demo_walk"

    def __init__(self, ctx):
        if ctx.space is None:
            raise SpecError("operator.kind demo_walk needs operator.space")
        self.space = {k: p for k, p in ctx.space.items() if p.type != "categorical"}
        self.located = locate_names(self.space, ctx.files, "operator.space")
        self.styles = ctx.styles
        self.step = float(ctx.spec.operator.options.get("step", 0.5))

    def propose(self, state, n, rng):
        style = self.styles.pick(rng)
        for _ in range(8):
            name = rng.choice(sorted(self.located))
            param, old = self.space[name], read_values(self.located, state.files)[name]
            unit = param.to_unit(min(max(old, param.low), param.high))
            new = param.from_unit(unit + rng.gauss(0.0, self.step * style.scale))
            files, params, description = apply_values(self.located, state.files, {name: new})
            if files:
                return Candidate(
                    state.commit, files, f"walk: {description}", style.name, params, {"plugin": self.name}
                )
        raise InvalidProposal("the walk stood still")

    def observe(self, record):
        """A random walk has no memory."""

    def params_of(self, files):
        return read_values(self.located, files)


class Newest:
    """Parents uniformly at random; survivors: the child and the newest members."""

    def parents(self, pop, k, signs, rng, *, tournament_size):
        return [rng.choice(pop) for _ in range(k)]

    def admit(self, pop, child, size, signs):
        return [child, *sorted(pop, key=lambda ind: -ind.n)][:size]
'''


def write_plugin(site: Path, *, broken: bool = False) -> Path:
    """The package in `site` (created); `broken` adds an operator whose module does not exist."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{MODULE}.py").write_text(SOURCE)
    info = site / f"{MODULE}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: metaexp-demo-plugin\nVersion: 0.1\n")
    operators = [f"{OPERATOR} = {MODULE}:Walk"] + [f"{BROKEN} = {MODULE}_missing:Walk"] * broken
    (info / "entry_points.txt").write_text(
        "[metaexp.operators]\n"
        + "\n".join(operators)
        + f"\n\n[metaexp.selections]\n{SELECTION} = {MODULE}:Newest\n"
    )
    return site


def clear_registries() -> None:
    from metaexp.decide.selections import selections
    from metaexp.operators import operators

    operators.cache_clear()
    selections.cache_clear()
