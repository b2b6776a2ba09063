"""The spec: one YAML file, validated with pydantic; unknown keys are errors.

base.py       _Strict, the base of every model
harness.py    `harness:` and `metrics:`: the programs a candidate runs, cascade, validation
objective.py  `objective:`: its modes and constraints
operator.py   `operator:`: what proposes changes, and its settings
strategy.py   `strategy:`: islands, population, selection, migration, escape
run.py        Spec, the whole file; noise, budget, ray; a pipeline's stages (stage_spec)
artifacts.py  `artifacts:`: where each try's diff, log tail and changed files are kept
loading.py    load_spec, error messages that name the key, the JSON schema
space.py      search spaces (Optuna distributions), a file of their own
"""

from __future__ import annotations

from metaexp.spec.artifacts import ArtifactsSpec
from metaexp.spec.harness import CascadeStageSpec, HarnessSpec, MetricSpec, ValidationSpec, argv_of
from metaexp.spec.loading import format_validation_error, json_schema, load_spec
from metaexp.spec.operator import OperatorSpec, PricesSpec, ScheduleSpec, TuneSpec
from metaexp.spec.run import (
    TAG_PATTERN,
    BudgetSpec,
    NoiseSpec,
    ObjectiveSpec,
    RaySpec,
    Spec,
    SPRTSpec,
    StageSpec,
    stage_spec,
)
from metaexp.spec.strategy import EscapeSpec, FeatureSpec, IslandSpec, MigrationSpec, StrategySpec

__all__ = [
    "TAG_PATTERN",
    "ArtifactsSpec",
    "BudgetSpec",
    "CascadeStageSpec",
    "EscapeSpec",
    "FeatureSpec",
    "HarnessSpec",
    "IslandSpec",
    "MetricSpec",
    "MigrationSpec",
    "NoiseSpec",
    "ObjectiveSpec",
    "OperatorSpec",
    "PricesSpec",
    "RaySpec",
    "SPRTSpec",
    "ScheduleSpec",
    "Spec",
    "StageSpec",
    "StrategySpec",
    "TuneSpec",
    "ValidationSpec",
    "argv_of",
    "format_validation_error",
    "json_schema",
    "load_spec",
    "stage_spec",
]
