"""Hypothesis styles: named files every operator understands, chosen per proposal."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from metaexp.errors import SpecError
from metaexp.resources import data_dir
from metaexp.spec import format_validation_error


class _StyleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instruction: str
    scale: float = Field(0.2, gt=0, le=10)
    count: int | None = Field(1, ge=1)


@dataclass(frozen=True)
class Style:
    name: str
    instruction: str
    scale: float  # how far offline operators move a value
    count: int | None  # how many values change; None = all

    @property
    def whole(self) -> bool:
        """Does a sampler's suggestion go in whole (every value, all the way), as the sampler's own trial?"""
        return self.count is None and self.scale >= 1.0


def style_dirs(root: Path) -> list[Path]:
    """A project's own strategies/styles/ first, then metaexp's shipped ones."""
    return [root / "strategies" / "styles", data_dir("strategies") / "styles"]


def load_style(name: str, root: Path) -> Style:
    for folder in style_dirs(root):
        path = folder / f"{name}.yaml"
        if path.is_file():
            try:
                parsed = _StyleFile.model_validate(yaml.safe_load(path.read_text()) or {})
            except ValidationError as exc:
                raise SpecError(format_validation_error(path, exc)) from None
            return Style(name, parsed.instruction, parsed.scale, parsed.count)
    known = sorted({p.stem for d in style_dirs(root) if d.is_dir() for p in d.glob("*.yaml")})
    raise SpecError(f"operator.style: unknown style {name!r} (known: {', '.join(known)})")


class StyleMix:
    """One style or a weighted mix; `pick` draws one per proposal with the caller's RNG."""

    def __init__(self, choice: str | dict[str, float], root: Path) -> None:
        weights = {choice: 1.0} if isinstance(choice, str) else dict(choice)
        self.styles = [load_style(name, root) for name in weights]
        self.weights = list(weights.values())

    def pick(self, rng: random.Random) -> Style:
        if len(self.styles) == 1:
            return self.styles[0]
        return rng.choices(self.styles, weights=self.weights, k=1)[0]
