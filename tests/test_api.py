"""The Python API, used as a notebook would: only `import metaexp`, on a real git repository.

The `project` fixture only builds the repository (the landscape example: params.py is the target,
evaluate.py the harness); everything metaexp does here goes through the public names.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, Project, git

import metaexp

SPEC: dict[str, Any] = {  # harnesses/landscape/metaexp.yaml, as a dict
    "tag": "landscape",
    "start": "HEAD",
    "target": ["params.py"],
    "harness": {"command": "python evaluate.py", "immutable": ["evaluate.py"], "time_budget_s": 1},
    "metrics": {"loss": {"direction": "minimize"}},
    "objective": {"primary": "loss"},
    "operator": {"kind": "perturb", "space": "space.yaml", "style": {"conservative": 0.7, "bold": 0.3}},
    "strategy": "strategies/hill_climb.yaml",  # a preset, resolved as beside a file in root
    "budget": {"max_experiments": 6},
    "seed": 0,
}


def test_a_dict_spec_runs_and_the_result_names_the_best_and_the_ledger(project: Project) -> None:
    spec = metaexp.load_spec(SPEC, root=project.root)
    assert isinstance(spec, metaexp.Spec)
    assert (spec.root, spec.strategy.name) == (project.root.resolve(), "hill_climb")
    seen: list[tuple[int, int]] = []

    def on_record(record: metaexp.ExperimentRecord, tally: metaexp.Tally) -> str | None:
        seen.append((record.n, tally.total))
        return None

    progress = io.StringIO()
    result = metaexp.run(spec, on_record=on_record, out=progress)

    assert isinstance(result, metaexp.RunResult)
    assert (result.stop_reason, result.aborted, result.interrupted) == (
        "max_experiments=6 reached",
        False,
        False,
    )
    assert "max_experiments=6 reached" in progress.getvalue()
    records = result.records()
    assert all(
        isinstance(r, metaexp.ExperimentRecord) and isinstance(r.status, metaexp.Status) for r in records
    )
    assert seen == [(r.n, r.n) for r in records]  # on_record saw every record, as it was counted
    assert result.experiments == sum(r.status.harness_ran for r in records) == 6
    assert result.proposals == len(records)
    assert result.counts == Counter(str(r.status) for r in records)
    best = [r for r in records if r.best][-1]
    assert result.best == best
    assert result.best_value == min(r.value for r in records if r.best and r.value is not None)
    assert (result.best_commit, result.best_metrics) == (best.commit, best.metrics)
    assert set(result.best_metrics) == {"loss"}
    assert git(project.root, "rev-parse", "refs/metaexp/landscape/best").strip() == result.best_commit
    assert result.experiments_jsonl == project.root.resolve() / ".metaexp" / "landscape" / "experiments.jsonl"
    lines = result.experiments_jsonl.read_text().splitlines()
    assert [json.loads(line)["n"] for line in lines] == [r.n for r in records]
    assert result.results_tsv is not None
    assert len(result.results_tsv.read_text().splitlines()) == len(records) + 1  # a header, a row each

    again = metaexp.run(metaexp.load_spec(SPEC, root=project.root), out=io.StringIO())  # resumes
    assert again.stop_reason == result.stop_reason
    assert (again.counts, again.best_commit) == (result.counts, result.best_commit)
    assert again.records() == records  # nothing more ran: the budget was spent


def test_a_dict_spec_resolves_its_paths_against_root_or_the_current_directory(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project.root / "mine.yaml").write_text(yaml.safe_dump({"explore_every": 3}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = metaexp.load_spec({**SPEC, "strategy": "mine.yaml"}, root=project.root)
    assert (spec.strategy.name, spec.strategy.explore_every) == ("mine", 3)
    with pytest.raises(metaexp.SpecError, match=r"^spec: strategy: file 'mine\.yaml' not found"):
        metaexp.load_spec({**SPEC, "strategy": "mine.yaml"})  # the current directory has none
    monkeypatch.chdir(project.root)
    assert metaexp.load_spec({**SPEC, "strategy": "mine.yaml"}).root == project.root.resolve()


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"budgt": {"max_experiments": 3}}, "budgt: unknown key"),
        ({"operator": {**SPEC["operator"], "kindd": "perturb"}}, "operator.kindd: unknown key"),
        ({"budget": {"max_experiments": "many"}}, "budget.max_experiments: Input should be a valid integer"),
        ({"root": "."}, "root: not a spec key"),
    ],
    ids=["top level", "nested", "a bad value", "root inside"],
)
def test_a_bad_dict_spec_is_one_line_naming_the_key(
    project: Project, change: dict[str, Any], key: str
) -> None:
    with pytest.raises(metaexp.SpecError) as caught:
        metaexp.load_spec({**SPEC, **change}, root=project.root)
    message = str(caught.value)
    assert message.startswith(f"spec: {key}"), message
    assert "\n" not in message
    assert isinstance(caught.value, metaexp.MetaexpError)


def test_a_missing_root_or_a_non_spec_is_a_spec_error(project: Project) -> None:
    with pytest.raises(metaexp.SpecError, match=r"root: .* is not a directory"):
        metaexp.load_spec(SPEC, root=project.root / "absent")
    with pytest.raises(metaexp.SpecError, match="must be a spec file's path or a mapping"):
        metaexp.load_spec(["tag", "landscape"])  # type: ignore[arg-type]
    path = project.root / "metaexp.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    with pytest.raises(metaexp.SpecError, match="root= is for a dict spec"):
        metaexp.load_spec(path, root=project.root)
    assert metaexp.load_spec(path) == metaexp.load_spec(SPEC, root=project.root)  # a file and its dict agree


def test_study_and_meta_run_from_a_dict_spec(project: Project) -> None:
    spec = {**SPEC, "budget": {"max_experiments": 3, "target": 0.0}}
    study = metaexp.study(
        spec, ["hill_climb"], seeds=1, root=project.root, out_dir=project.root / "study", out=io.StringIO()
    )
    assert isinstance(study, metaexp.StudyResult)
    assert [(r.tag, r.evaluations) for r in study.runs] == [("landscape-hill_climb-s0", 3)]
    assert json.loads((project.root / "study" / "study.json").read_text())["strategies"][0]["runs"] == 1

    (project.root / "strategy.yaml").write_text(
        yaml.safe_dump({"operator.style": {"type": "categorical", "choices": ["conservative", "bold"]}})
    )
    meta_block = {
        "space": "strategy.yaml",
        "trials": 2,
        "pruner": "none",
        "sampler": "random",
        "reevaluate": 0,
    }
    result = metaexp.meta({**spec, "meta": meta_block}, root=project.root, out=io.StringIO())
    assert isinstance(result, metaexp.MetaResult)
    assert (result.trials, result.interrupted) == (2, False)


def test_import_metaexp_loads_nothing_heavy_and_every_public_name_resolves() -> None:
    heavy = ["pydantic", "optuna", "ray", "openai", "torch", "numpy", "yaml", "metaexp.spec"]
    code = f"import sys, metaexp; print([m for m in {heavy!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
    for name in metaexp.__all__:
        assert getattr(metaexp, name) is not None, name
    assert set(metaexp.__all__) <= set(dir(metaexp))
    assert callable(metaexp.run) and callable(metaexp.study) and callable(metaexp.meta)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        metaexp.nothing  # noqa: B018
