"""`metaexp validate` on fuzzed specs: a valid spec with keys set to hostile values or removed.
Whatever it gets, validate answers ok or one `metaexp: error:` naming a key (and exit 1), never a
traceback."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import LANDSCAPE, ROOT, git
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metaexp.cli import main
from metaexp.spec import Spec


def key_paths(schema: dict[str, Any], node: dict[str, Any], prefix: str = "", depth: int = 0) -> list[str]:
    """Every key of the spec's JSON schema, dotted (harness.timeout_s), to depth 3."""
    paths: list[str] = []
    for name, body in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        paths.append(path)
        refs = [body.get("$ref")] + [b.get("$ref") for b in body.get("anyOf", [])]
        for ref in filter(None, refs):
            if depth < 2:
                paths += key_paths(schema, schema["$defs"][ref.rsplit("/", 1)[1]], f"{path}.", depth + 1)
    return paths


SCHEMA = Spec.model_json_schema()
KEYS = sorted(set(key_paths(SCHEMA, SCHEMA)) - {"root"})
# keys that name files, revisions or other names: where the fuzzer found crashes, tried more often
NAMED = [
    "strategy",
    "start",
    "operator.style",
    "operator.space",
    "storage",
    "target",
    "harness.command",
    "harness.immutable",
    "operator.program",
    "operator.warm_start",
    "operator.replay",
    "tag",
]
NAMING = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, sorted(KEYS, key=len, reverse=True))) + r")\b")

hostile_text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    st.sampled_from(
        [
            "x" * 300,
            "\x00",
            "a\nb",
            "/etc/passwd",
            "../../../../etc/passwd",
            "metaexp.yaml",
            "strategies/../../x.yaml",
            "strategies/ga.yaml",
            "~",
            "",
            "postgresql+psycopg2://u:pw@127.0.0.1:1/db",
            "HEAD~1000",
            "*",
        ]
    ),
)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)
value = st.recursive(
    scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(hostile_text, inner, max_size=3)),
    max_leaves=6,
)
DELETE = object()
mutation = st.tuples(
    st.one_of(st.sampled_from(KEYS), st.sampled_from(NAMED)), st.one_of(st.just(DELETE), value, hostile_text)
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    for name in ("params.py", "evaluate.py"):
        (root / name).write_bytes((LANDSCAPE / name).read_bytes())
    (root / "space.yaml").write_bytes((ROOT / "search_spaces" / "landscape.yaml").read_bytes())
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    return root


def mutated(mutations: list[tuple[str, Any]]) -> dict[str, Any]:
    data = yaml.safe_load((LANDSCAPE / "metaexp.yaml").read_text())
    data["operator"]["space"] = "space.yaml"
    for key, new in mutations:
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if new is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = new
    return data


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 300)),
    deadline=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),  # the same examples on every run: CI is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(mutation, min_size=1, max_size=3))
def test_validate_answers_every_spec_with_ok_or_one_error_naming_a_key(
    repo: Path, mutations: list[tuple[str, Any]]
) -> None:
    spec = repo / "metaexp.yaml"
    spec.write_text(yaml.safe_dump(mutated(mutations), allow_unicode=True))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["validate", str(spec)])
        except SystemExit as exc:  # argparse: never for a spec's content
            code = exc.code
    assert code in (0, 1), (mutations, err.getvalue())
    errors = [line for line in err.getvalue().splitlines() if line.startswith("metaexp: error:")]
    if code == 0:
        assert out.getvalue().startswith(f"{spec}: ok") and errors == []
        return
    assert len(errors) == 1, (mutations, err.getvalue())
    assert NAMING.search(err.getvalue()), (mutations, err.getvalue())  # e.g. "operator.style: ..."


def test_the_fuzzer_reaches_every_section() -> None:
    assert {key.split(".")[0] for key in KEYS} >= {
        "harness",
        "operator",
        "strategy",
        "budget",
        "ray",
        "noise",
    }
    assert "harness.timeout_s" in KEYS and "operator.tune.budget" in KEYS
