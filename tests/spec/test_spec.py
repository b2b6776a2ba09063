"""Malformed specs give messages that name the file, the key and what would be valid."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from conftest import Project

from metaexp.errors import SpecError
from metaexp.run.plan import make_plan
from metaexp.spec import load_spec


def _error(project: Project, **overrides: object) -> str:
    with pytest.raises(SpecError) as info:
        make_plan(load_spec(project.spec(**overrides)))
    return str(info.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"harnes": {"command": "x"}}, "harnes: unknown key"),
        ({"harness": {"command": "python evaluate.py", "timeout": 5}}, "harness.timeout: unknown key"),
        ({"harness": {"command": ""}}, "harness.command: must name a program"),
        (
            {"harness": {"command": "python evaluate.py", "timeout_s": -1}},
            "harness.timeout_s: Input should be greater than 0",
        ),
        (
            {"metrics": {"loss": {"direction": "down"}}},
            "metrics.loss.direction: Input should be 'minimize' or 'maximize'",
        ),
        ({"metrics": {"loss": {"pattern": "loss: \\S+"}}}, "metrics.loss.pattern: needs one capture group"),
        (
            {"metrics": {"loss": {"pattern": "loss: (\\S+"}}},
            "metrics.loss.pattern: not a valid regular expression",
        ),
        ({"objective": {"primary": "acc"}}, "objective.primary: 'acc' is not a metric (metrics: loss)"),
        ({"operator": {"kind": "params", "space": None}}, "operator.kind 'params' needs operator.space"),
        (
            {"operator": {"kind": "magic"}},
            "operator.kind: not a registered operator (valid: params, perturb, llm, hybrid; plugins add "
            "more under the entry-point group metaexp.operators) (got 'magic')",
        ),
        ({"operator": {"sampler": "bayes"}}, "operator.sampler: Input should be"),
        ({"operator": {"kind": "llm"}}, "operator.kind 'llm' needs operator.model"),
        (
            {"operator": {"kind": "llm", "model": "m", "edit_format": "patch"}},
            "operator.edit_format: Input should be",
        ),
        (
            {"operator": {"kind": "llm", "model": "m", "prices": {"input": 1}}},
            "operator.prices.input: unknown key",
        ),
        ({"tag": "has space"}, "tag: String should match pattern"),
        (
            {"budget": {"max_experiments": 0}},
            "budget.max_experiments: Input should be greater than or equal to 1",
        ),
        ({"strategy": {"explore_rate": 2}}, "strategy.explore_rate: Input should be less than or equal to 1"),
        (
            {"strategy": {"selection": "roulette"}},
            "strategy.selection: not a registered selection (valid: tournament, best, nsga2, map_elites; "
            "plugins add more under the entry-point group metaexp.selections) (got 'roulette')",
        ),
        ({"operator": {"options": {"depth": 2}}}, "operator.options is for plugin operators"),
        ({"strategy": "strategies/nope.yaml"}, "strategy: file 'strategies/nope.yaml' not found"),
        ({"target": ["trian.py"]}, "target: 'trian.py' matches no file in the start commit"),
        (
            {"harness": {"command": "python evaluate.py", "immutable": ["params.py"]}},
            "harness.immutable: params.py also match target",
        ),
        ({"harness": {"command": "python evalute.py"}}, "harness.command: 'evalute.py' is not a file"),
        (
            {"harness": {"command": "no-such-program-xyz run"}},
            "program 'no-such-program-xyz' not found on PATH",
        ),
        (
            {"operator": {"style": "wild"}},
            "unknown style 'wild' (known: ablation, bold, combine, conservative, global, radical)",
        ),
        ({"start": "no-such-branch"}, "start: 'no-such-branch' is not a commit"),
    ],
)
def test_bad_specs_name_the_key(project: Project, overrides: dict[str, object], expected: str) -> None:
    path = project.spec(**overrides)
    try:
        spec = load_spec(path)
    except SpecError as exc:  # the file's own content: the file, then the key
        message, prefix = str(exc), f"{path}: "
        assert message.startswith(prefix), message
    else:  # what the file points at (the start commit, its files, a style): the key first
        with pytest.raises(SpecError) as info:
            make_plan(spec)
        message, prefix = str(info.value), ""
    assert "\n" not in message
    assert re.match(r"[a-z_]+(\.[A-Za-z_0-9]+)*: ", message[len(prefix) :]), message  # the key
    assert expected in message


def test_missing_keys_and_non_mapping(project: Project) -> None:
    path = project.root / "bad.yaml"
    path.write_text("tag: x\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    text = str(info.value)
    assert str(path) in text
    for key in (
        "target: required key is missing",
        "harness: required key is missing",
        "metrics: required key is missing",
        "objective: required key is missing",
    ):
        assert key in text
    path.write_text("- a list\n")
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(path)
    path.write_text("tag: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML: line 2, column 1") as info:
        load_spec(path)
    assert "\n" not in str(info.value)  # one line
    path.write_text("tag: a\ntarget: [params.py]\ntag: b\n")  # YAML keeps the last without a word
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert (
        str(info.value)
        == f"{path}: not valid YAML: line 3, column 1: key 'tag' is given twice (lines 1 and 3)"
    )
    (project.root / "space.yaml").write_text(
        "X: {type: float, low: 0, high: 1}\nX: {type: int, low: 0, high: 9}\n"
    )
    with pytest.raises(
        SpecError, match=r"operator.space: .*space.yaml: not valid YAML: line 2.* key .X. is given twice"
    ):
        make_plan(load_spec(project.spec()))


def test_space_names_must_exist_in_the_target(project: Project) -> None:
    (project.root / "space.yaml").write_text("LEARNING_RATE: {type: float, low: 0.1, high: 1.0}\n")
    assert "operator.space: 'LEARNING_RATE' is not assigned in any target file (params.py)" in _error(project)
    (project.root / "space.yaml").write_text("X: {type: float, low: 1.0, high: 0.1}\n")
    assert "space.yaml" in _error(project) and "X: needs low < high" in _error(project)


def test_cli_reports_errors_with_exit_code_1(project: Project) -> None:
    project.spec(objective={"primary": "acc"})
    proc = project.cli("validate", "metaexp.yaml", check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("metaexp: error: metaexp.yaml: objective.primary: ")
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_schema_is_json_schema_of_the_spec(project: Project) -> None:
    schema = json.loads(project.cli("schema").stdout)
    assert schema["additionalProperties"] is False
    assert {"tag", "target", "harness", "metrics", "objective", "operator", "budget"} <= set(
        schema["properties"]
    )
    assert "root" not in schema["properties"]


def test_strategy_presets_and_inline_strategy(project: Project) -> None:
    spec = load_spec(project.spec(strategy="strategies/explore_exploit.yaml"))
    assert spec.strategy.name == "explore_exploit" and spec.strategy.explore_every == 5
    spec = load_spec(project.spec(strategy="explore_exploit"))  # a preset by its name, as study takes it
    assert spec.strategy.name == "explore_exploit" and spec.strategy.explore_every == 5
    unknown = r"strategy: file 'hill_climbing' not found, nor a preset \(.*hill_climb"
    with pytest.raises(SpecError, match=unknown):
        load_spec(project.spec(strategy="hill_climbing"))
    spec = load_spec(project.spec(strategy={"explore_rate": 0.25}))
    assert spec.strategy.explore_rate == 0.25
    data = yaml.safe_load((project.root / "metaexp.yaml").read_text())
    assert data["strategy"] == {"explore_rate": 0.25}
