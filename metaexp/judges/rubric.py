"""The rubric and labels files: their pydantic models, and loading them with errors that say where."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from metaexp.errors import MetaexpError


class JudgeError(MetaexpError):
    """A rubric or labels file is malformed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Criterion(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="short name, e.g. no_clickbait")
    question: str = Field(min_length=1, description="a yes/no question the judge answers PASS or FAIL")
    weight: float = Field(1.0, gt=0, description="its share of the score")


class Rubric(_Strict):
    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(0.0, ge=0, le=2)
    min_agreement: float = Field(0.6, ge=0, le=1, description="Cohen's kappa every criterion must reach")
    validated: str | None = Field(None, description="the validation report, relative to the rubric")
    criteria: list[Criterion] = Field(min_length=1)
    path: Path = Field(Path("rubric.yaml"), exclude=True)

    @model_validator(mode="after")
    def _unique_ids(self) -> Rubric:
        ids = [c.id for c in self.criteria]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"criterion ids must be unique; repeated: {', '.join(twice)}")
        return self

    def fingerprint(self) -> str:
        """What a validation is valid for: the judge model and the questions (not weights, threshold)."""
        judged = {
            "model": self.model,
            "temperature": self.temperature,
            "criteria": [[c.id, c.question] for c in self.criteria],
        }
        return hashlib.sha256(json.dumps(judged, sort_keys=True).encode()).hexdigest()


class Labelled(_Strict):
    item: str = Field(min_length=1)
    labels: dict[str, StrictBool] = Field(min_length=1)


def load_rubric(path: str | Path) -> Rubric:
    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise JudgeError(f"{path}: must be a mapping (model:, criteria:, min_agreement:, ...)")
    try:
        return Rubric.model_validate({**data, "path": path})
    except ValidationError as exc:
        raise JudgeError(_problems(path, exc)) from None


def load_labels(path: str | Path, rubric: Rubric) -> list[Labelled]:
    """A YAML list, or JSONL, of {item: text, labels: {criterion_id: true/false}}."""
    path = Path(path)
    if path.suffix == ".jsonl":
        data: Any = [json.loads(line) for line in _read(path).splitlines() if line.strip()]
    else:
        data = _read_yaml(path)
    if not isinstance(data, list) or not data:
        raise JudgeError(f"{path}: must be a non-empty list of {{item: ..., labels: {{...}}}}")
    known = {c.id for c in rubric.criteria}
    rows = []
    for i, raw in enumerate(data):
        try:
            row = Labelled.model_validate(raw)
        except ValidationError as exc:
            raise JudgeError(_problems(path, exc, prefix=f"[{i}]")) from None
        unknown = sorted(set(row.labels) - known)
        if unknown:
            raise JudgeError(
                f"{path}: [{i}].labels.{unknown[0]}: not a criterion of {rubric.path} "
                f"(criteria: {', '.join(sorted(known))})"
            )
        rows.append(row)
    return rows


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise JudgeError(f"{path}: file not found") from None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(_read(path))
    except yaml.YAMLError as exc:
        raise JudgeError(f"{path}: not valid YAML: {exc}") from None


def _problems(path: Path, exc: ValidationError, prefix: str = "") -> str:
    lines = [f"{path}: {exc.error_count()} problem(s):"]
    for err in exc.errors():
        where = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        where = where.lstrip(".") or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key (check its spelling)")
        elif err["type"] == "missing":
            lines.append(f"  {where}: required key is missing")
        else:
            lines.append(f"  {where}: {err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})")
    return "\n".join(lines)
