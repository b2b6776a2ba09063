"""Pipeline runs: stage two starts from stage one's best with stage one's target frozen."""

from __future__ import annotations

import pytest
import yaml
from conftest import Project, git

from metaexp.errors import SpecError
from metaexp.record.records import Status
from metaexp.run.pipeline import stages
from metaexp.run.plan import make_plan
from metaexp.spec import load_spec

STAGE_ONE = "# preprocessing settings\nCLIP = 9.0  # data quality peaks at 4.0\n"
HARNESS = (
    "import runpy\n"
    "clip = runpy.run_path('prep.py')['CLIP']\n"
    "print('quality:', 10 - (clip - 4.0) ** 2)\n"
    "exec(open('evaluate.py').read())\n"
)


def _pipeline(project: Project, first: int = 6, second: int = 6):
    project.write("prep.py", STAGE_ONE)
    project.write("both.py", HARNESS)
    return project.spec(
        tag="pipe",
        harness={"command": "python both.py", "immutable": ["both.py", "evaluate.py"]},
        metrics={"quality": {"direction": "maximize"}, "loss": {"direction": "minimize"}},
        objective={"primary": "loss"},
        pipeline=[
            {
                "name": "prep",
                "target": ["prep.py"],
                "objective": {"primary": "quality"},
                "operator": {"kind": "perturb", "style": "bold"},
                "budget": {"max_experiments": first},
            },
            {"name": "train", "target": ["params.py"], "budget": {"max_experiments": second}},
        ],
    )


def test_stage_two_starts_from_stage_one_best_with_its_target_frozen(project: Project) -> None:
    path = _pipeline(project)
    checked = project.cli("validate", str(path)).stdout
    assert "pipeline stage 1 pipe-prep: target prep.py, objective maximize quality" in checked
    assert (
        "pipeline stage 2 pipe-train: target params.py, objective minimize loss; frozen: prep.py" in checked
    )
    out = project.cli("run", str(path)).stderr
    assert "pipeline stage 1/2: prep" in out and "pipeline stage 2/2: train" in out
    one = project.assert_consistent("pipe-prep")
    two = project.assert_consistent("pipe-train")
    assert len(one) == 6 and len(two) == 6
    best_one = next(r for r in reversed(one) if r.best)
    assert best_one.value is not None and best_one.value > one[0].value  # stage one improved quality
    assert two[0].commit == best_one.commit  # stage two's baseline is stage one's best
    frozen = git(project.root, "show", f"{best_one.commit}:prep.py")
    for rec in two:
        if rec.commit:
            assert git(project.root, "show", f"{rec.commit}:prep.py") == frozen
    assert any(r.status is Status.KEEP for r in two[1:])
    status = project.cli("status", str(path)).stdout
    assert "== stage 1: pipe-prep" in status and "== stage 2: pipe-train" in status

    # a stage-two candidate that edits stage one's file is rejected, naming the stage
    spec = stages(load_spec(path))[1]
    plan = make_plan(spec, start=two[0].commit)
    why = plan.check_candidate({"prep.py": b"CLIP = 4.0\n"}, {"prep.py": b"CLIP = 1.0\n"})
    assert why == "changes file(s) frozen by the earlier pipeline stage 'prep': prep.py"

    # running again resumes: both budgets are spent, nothing new is tried
    project.cli("run", str(path))
    assert len(project.records("pipe-prep")) == 6 and len(project.records("pipe-train")) == 6


def test_a_stage_may_not_take_over_an_earlier_stage_target(project: Project) -> None:
    path = _pipeline(project)
    data = yaml.safe_load(path.read_text())
    data["pipeline"][1]["target"] = ["prep.py"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(
        SpecError, match=r"pipeline.1 \(train\): target \['prep.py'\] belongs to stage 'prep'"
    ):
        load_spec(path)


def test_a_bad_stage_objective_names_the_stage(project: Project) -> None:
    path = _pipeline(project)
    path.write_text(path.read_text().replace("primary: quality", "primary: qualty"))
    with pytest.raises(SpecError, match=r"pipeline.0 \(prep\)"):
        load_spec(path)
