"""Plugins by entry points: a tiny package (tests/plugin_package.py) put on sys.path or PYTHONPATH
registers an operator and a selection; specs, the JSON Schema, `metaexp run` and the contract tests
take them like the built-ins, and a missing or broken plugin is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, Project
from plugin_package import BROKEN, MODULE, OPERATOR, SELECTION, clear_registries, write_plugin

from metaexp.decide.selections import selection_names, selections
from metaexp.operators import BUILTINS, operators
from metaexp.plugins import PluginError
from metaexp.record.records import Status


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The plugin (with a broken operator beside it) on this process's sys.path, the registries
    read again; all undone afterwards."""
    folder = write_plugin(tmp_path / "site", broken=True)
    monkeypatch.syspath_prepend(str(folder))
    clear_registries()
    yield folder
    monkeypatch.undo()
    sys.modules.pop(MODULE, None)
    clear_registries()


def _env(folder: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    return proc.stderr


# ---------------------------------------------------------------------------
# The registries, in this process


def test_names_come_from_metadata_and_a_plugin_is_imported_on_first_use(site: Path) -> None:
    assert operators().names() == [*BUILTINS, BROKEN, OPERATOR]
    assert selection_names() == ["tournament", "best", "nsga2", SELECTION, "map_elites"]
    assert MODULE not in sys.modules  # names, the schema's enum and spec validation import nothing
    assert operators()[OPERATOR].__name__ == "Walk" and MODULE in sys.modules
    assert type(selections()[SELECTION]).__name__ == "Newest"  # a class, instantiated once
    assert selections()[SELECTION] is selections()[SELECTION]


def test_a_broken_plugin_is_one_line_naming_it_and_spares_the_rest(site: Path) -> None:
    with pytest.raises(PluginError) as info:
        operators()[BROKEN]
    message = str(info.value)
    assert message == (
        f"operator '{BROKEN}' (entry point '{BROKEN} = {MODULE}_missing:Walk' in group metaexp.operators, "
        f"from metaexp-demo-plugin 0.1): the plugin failed to load: "
        f"ModuleNotFoundError: No module named '{MODULE}_missing'"
    )
    assert callable(operators()["perturb"]) and callable(operators()[OPERATOR])


def test_a_plugin_may_not_replace_a_builtin_and_must_be_what_its_group_holds(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = site / f"{MODULE}-0.1.dist-info"
    (info / "entry_points.txt").write_text(
        f"[metaexp.operators]\nperturb = {MODULE}:Walk\nnumber = {MODULE}:__doc__\n\n"
        f"[metaexp.selections]\nhalf = {MODULE}:apply_values\n"
    )
    clear_registries()
    assert operators().names() == [*BUILTINS, "number"]
    assert capsys.readouterr().err == (
        f"metaexp: warning: metaexp.operators: '{MODULE}:Walk' may not replace the built-in 'perturb'; "
        "ignored\n"
    )
    assert operators()["perturb"] is BUILTINS["perturb"]
    with pytest.raises(PluginError, match=r"operator 'number' \(entry point .*\): names a str, not an"):
        operators()["number"]
    with pytest.raises(
        PluginError, match=r"selection 'half' \(.*\): names a function without parents and admit"
    ):
        selections()["half"]


# ---------------------------------------------------------------------------
# Through the CLI and the API, in a subprocess with the plugin on PYTHONPATH


def test_metaexp_run_records_a_plugin_operators_proposals(project: Project, tmp_path: Path) -> None:
    env = _env(write_plugin(tmp_path / "site"))
    project.spec(operator={"kind": OPERATOR, "options": {"step": 0.8}}, budget={"max_experiments": 7})
    schema = json.loads(project.cli("schema", env=env).stdout)["$defs"]
    assert OPERATOR in schema["OperatorSpec"]["properties"]["kind"]["enum"]
    assert SELECTION in schema["StrategySpec"]["properties"]["selection"]["enum"]

    project.cli("run", "metaexp.yaml", env=env)
    records = project.assert_consistent()
    ran = [r for r in records[1:] if r.status.harness_ran]
    assert len(records) == 7 and len(ran) >= 4
    assert [r.operator for r in records] == ["baseline"] + [OPERATOR] * 6
    for rec in ran:  # the plugin's candidates, as it described them and with its extra state
        assert rec.description.startswith("walk: ") and "→" in rec.description, rec.description
        assert rec.extra["plugin"] == OPERATOR and set(rec.params) == {"X", "Y", "WIDTH"}
    assert any(r.status is Status.KEEP for r in ran)


def test_a_spec_naming_a_plugin_not_installed_or_broken_is_one_line(project: Project, tmp_path: Path) -> None:
    project.spec(operator={"kind": OPERATOR})
    line = _one_line(project.cli("validate", "metaexp.yaml", check=False))
    assert line == (
        "metaexp: error: metaexp.yaml: operator.kind: not a registered operator (valid: params, perturb, "
        f"llm, hybrid; plugins add more under the entry-point group metaexp.operators) (got '{OPERATOR}')\n"
    )
    env = _env(write_plugin(tmp_path / "site", broken=True))
    project.spec(operator={"kind": BROKEN})
    line = _one_line(project.cli("validate", "metaexp.yaml", env=env, check=False))
    assert f"operator '{BROKEN}' (entry point '{BROKEN} = {MODULE}_missing:Walk'" in line
    assert "ModuleNotFoundError" in line
    project.spec(operator={"kind": "perturb"})  # the built-ins do not mind a broken plugin beside them
    assert project.cli("validate", "metaexp.yaml", env=env).stderr == ""


def test_a_plugin_selection_decides_what_a_population_keeps(project: Project, tmp_path: Path) -> None:
    """demo_newest keeps every child, so once the population is full a child worse than every
    member is a keep too (tournament would discard it)."""
    env = _env(write_plugin(tmp_path / "site"))
    project.spec(strategy={"population": 3, "selection": SELECTION}, budget={"max_experiments": 12})
    code = "import metaexp; metaexp.run('metaexp.yaml', scheduler='serial')"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project.root,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    records = project.assert_consistent()
    ran = [r for r in records[1:] if r.status.harness_ran]
    assert len(ran) >= 8 and all(r.status is Status.KEEP for r in ran)
    members = [records[0]]
    worse = 0
    for rec in ran:
        worse += len(members) == 3 and all(rec.value > m.value for m in members)
        members = [rec, *members][:3]
    assert worse, [r.value for r in ran]


def test_the_contract_tests_cover_an_installed_plugin(tmp_path: Path) -> None:
    env = _env(write_plugin(tmp_path / "site"))
    tests = ["tests/operators/test_operators.py", "tests/decide/test_selection.py"]
    only = f"{OPERATOR} or {SELECTION} or under_contract"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *tests, "-k", only],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    passed = {line.split("::", 1)[1] for line in proc.stdout.splitlines() if line.startswith("PASSED ")}
    assert {
        f"test_operator_contract[plugin-{OPERATOR}]",
        f"test_operator_resumes_from_history[plugin-{OPERATOR}]",
        "test_every_registered_operator_is_under_contract",
        f"test_every_registered_selection_draws_parents_from_its_rng_alone[{SELECTION}-signs0]",
        f"test_every_registered_selection_admits_within_its_size[{SELECTION}-signs1]",
    } <= passed, passed
