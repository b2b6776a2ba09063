"""The specs a fuzzer found crashing: each is now one line naming its key, exit 1, nothing run."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Project


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ({"strategy": "x" * 300}, "strategy: 'xxx"),
        ({"operator": {"style": "x" * 300}}, "operator.style: not a style name"),
        ({"start": "\x00"}, "start: not a commit"),
        ({"strategy": "/etc/passwd"}, "strategy: '/etc/passwd' lies outside the project"),
        (
            {"operator": {"style": "../../../etc/passwd"}},
            "operator.style: not a style name",
        ),
        (
            {"operator": {"space": "/etc/passwd"}},
            "operator.space: '/etc/passwd' lies outside",
        ),
        ({"operator": {"space": "metaexp.yaml"}}, "operator.space: "),
    ],
)
def test_bad_input_is_one_error_naming_the_key(project: Project, override: dict[str, Any], says: str) -> None:
    project.spec(**override)
    for command in ("validate", "run"):
        proc = project.cli(command, "metaexp.yaml", check=False)
        assert proc.returncode == 1, proc.stdout
        assert "Traceback" not in proc.stderr
        error = proc.stderr.split("metaexp: error: ", 1)[1]
        assert error.count("\n") == 1 and (error.startswith(says) or f": {says}" in error), error
        assert "root:" not in error  # /etc/passwd's content is never shown
    assert not (project.root / ".metaexp/landscape/experiments.jsonl").exists()


def test_an_unreachable_database_is_one_line(project: Project) -> None:
    project.spec(storage="postgresql+psycopg2://u:secret@127.0.0.1:1/db")
    proc = project.cli("run", "metaexp.yaml", check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("metaexp: error: storage postgresql+psycopg2://u:***@127.0.0.1:1/db: ")
    assert "Connection refused" in proc.stderr and "secret" not in proc.stderr


def test_an_edit_not_committed_is_named_before_a_run_starts_without_it(project: Project) -> None:
    """The run starts from the start commit; a target edited in the checkout but not committed is
    not in it, and validate and run say so (before, both went on without a word)."""
    project.spec(budget={"max_experiments": 1})
    params = project.root / "params.py"
    params.write_text(params.read_text().replace("X = 3.0", "X = 1.5"))
    note = "note: params.py in your checkout differ(s) from the start commit"
    checked = project.cli("validate", "metaexp.yaml")
    assert note in checked.stdout and "explore_every off" in checked.stdout
    ran = project.cli("run", "metaexp.yaml")
    assert note in ran.stderr and "commit the edit to include it" in ran.stderr
    assert project.records()[0].value == 7.0  # the committed X = 3.0: (3 - 1.5)^2 + 1.5^2 + 0.1 * 5^2
    assert note not in project.cli("run", "metaexp.yaml").stderr  # a resume: the run has its start
    params.write_text(params.read_text().replace("X = 1.5", "X = 3.0"))
    assert note not in project.cli("validate", "metaexp.yaml").stdout
