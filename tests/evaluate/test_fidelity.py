"""Fidelity: a cascade of cheap stages before the full run, and a held-out validation harness."""

from __future__ import annotations

from conftest import Project

from metaexp.record.records import Status
from metaexp.record.storage import open_study

VALUES = (
    "vals = {l.split('=')[0].strip(): float(l.split('=')[1].split('#')[0])\n"
    "        for l in open('params.py').read().splitlines() if '=' in l and not l.startswith('#')}\n"
)
QUICK = VALUES + (
    "import sys\n"
    "if vals['WIDTH'] > 11: sys.exit('quick check: WIDTH above 11 is not supported')\n"
    "print('coarse:', abs(vals['X'] - 1.5) + abs(vals['Y'] + 0.5))\n"
)
HELD_OUT = VALUES + "print('val_loss:', (vals['X'] - 1.0) ** 2 + (vals['Y'] + 0.5) ** 2)\n"


def test_cascade_stops_a_bad_candidate_before_the_full_run(project: Project) -> None:
    project.write("quick.py", QUICK)
    harness = {
        "command": "python evaluate.py",
        "immutable": ["evaluate.py", "quick.py"],
        "cascade": [{"name": "quick", "command": "python quick.py", "metric": "coarse", "max": 4.0}],
    }
    project.run(harness=harness, budget={"max_experiments": 16, "abort_on_consecutive_crashes": None})
    records = project.assert_consistent()
    logs = project.root / ".metaexp" / "landscape" / "logs"
    assert records[0].status is Status.KEEP and records[0].extra["cascade"][0]["passed"]
    stopped = [r for r in records if "cascade stage 'quick'" in r.reason]
    assert stopped, [r.reason for r in records]
    for rec in stopped:
        assert rec.status in (Status.DISCARD, Status.CRASH)
        assert rec.metrics == {} and rec.value is None
        assert not rec.extra["cascade"][-1]["passed"]
        assert not (logs / f"{rec.n}.log").exists()  # the full harness never ran
        assert (logs / f"{rec.n}.quick.log").exists()
        if rec.status is Status.DISCARD:
            assert rec.extra["cascade"][-1]["metrics"]["coarse"] > 4.0
            assert "above max 4" in rec.reason
        else:
            assert "WIDTH above 11" in rec.log_tail
    passed = [r for r in records[1:] if r.status.harness_ran and r.metrics]
    assert passed and all(r.extra["cascade"][0]["passed"] for r in passed)
    assert all(r.extra["cascade"][0]["metrics"]["coarse"] <= 4.0 for r in passed)
    assert all((logs / f"{r.n}.log").exists() for r in passed)


def test_validation_runs_on_every_new_best_and_lands_in_the_row(project: Project) -> None:
    project.write("heldout.py", HELD_OUT)
    harness = {
        "command": "python evaluate.py",
        "immutable": ["evaluate.py", "heldout.py"],
        "validation": {"command": "python heldout.py", "metrics": ["val_loss"]},
    }
    spec = project.spec(harness=harness, budget={"max_experiments": 10})
    assert (
        "validation on each new best: python heldout.py -> val_loss"
        in project.cli("validate", str(spec)).stdout
    )
    project.cli("run", str(spec))
    records = project.assert_consistent()
    bests = [r for r in records if r.best]
    assert len(bests) >= 2
    for rec in records:
        if rec.best:
            x, y = float(rec.params["X"]), float(rec.params["Y"])
            assert rec.extra["validation"]["metrics"]["val_loss"] == (x - 1.0) ** 2 + (y + 0.5) ** 2
        else:
            assert "validation" not in rec.extra
    rows = (project.root / ".metaexp" / "landscape" / "results.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    assert header[:3] == ["commit", "loss", "val:val_loss"]
    for rec, row in zip(records, rows[1:], strict=True):
        cell = row.split("\t")[2]
        assert (cell != "") == rec.best
        if rec.best:
            assert float(cell) == round(rec.extra["validation"]["metrics"]["val_loss"], 6)
    trials = open_study(None, project.root, "landscape", "minimize").get_trials()
    scored = {t.user_attrs["experiment"] for t in trials if "validation:val_loss" in t.user_attrs}
    assert scored == {r.n for r in bests}
    report = project.cli("report", str(spec)).stdout
    assert "held-out validation at each new best" in report
    assert (project.root / ".metaexp" / "landscape" / "validation.png").stat().st_size > 1000


def test_a_failing_validation_harness_is_recorded_not_fatal(project: Project) -> None:
    harness = {
        "command": "python evaluate.py",
        "validation": {"command": "python -c 'import sys; sys.exit(3)'", "metrics": ["val_loss"]},
    }
    result = project.run(harness=harness, budget={"max_experiments": 4})
    assert not result.aborted
    records = project.assert_consistent()
    assert records[0].extra["validation"]["error"] == "exit code 3"


def test_cascade_spec_errors_name_the_stage(project: Project) -> None:
    import pytest

    from metaexp.errors import SpecError
    from metaexp.spec import load_spec

    bad = {"command": "python evaluate.py", "cascade": [{"name": "quick", "command": "x", "max": 1}]}
    with pytest.raises(SpecError, match="cascade stage 'quick': min/max need `metric`"):
        load_spec(project.spec(harness=bad))
    for name in ("probe", "validation", "precheck", "3", "incumbent-0"):  # other logs of an experiment
        bad = {"command": "python evaluate.py", "cascade": [{"name": name, "command": "x"}]}
        with pytest.raises(SpecError, match=f"cascade stage '{name}': the name of other logs"):
            load_spec(project.spec(harness=bad))


BROKEN_STAGE = (  # fine for the baseline (experiment 1), broken for everything after it
    "import os, sys\nif os.environ['METAEXP_EXPERIMENT'] != '1':\n    sys.exit('stage env broken')\n"
)


def test_a_cascade_stage_that_breaks_after_the_baseline_aborts_the_run(project: Project) -> None:
    """Every candidate fails at a stage that broke after the baseline (not at anything the changes
    did): a crash streak's probe runs the parent's stages too, fails there, and the run aborts."""
    project.write("smoke.py", BROKEN_STAGE)
    harness = {
        "command": "python evaluate.py",
        "immutable": ["evaluate.py", "smoke.py"],
        "cascade": [{"name": "smoke", "command": "python smoke.py"}],
    }
    result = project.run(harness=harness, budget={"max_experiments": 9, "abort_on_consecutive_crashes": 3})
    assert result.aborted and "#4's parent failed too when run again" in result.stop_reason
    records = project.assert_consistent()
    assert len(records) == 4 and records[3].extra["probe"]["status"] == "crash"
    assert "cascade stage 'smoke'" in records[3].extra["probe"]["reason"]
    logs = project.root / ".metaexp" / "landscape" / "logs"
    assert "stage env broken" in (logs / "4.probe.smoke.log").read_text()
