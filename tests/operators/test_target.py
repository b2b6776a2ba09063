from __future__ import annotations

import json
import math
import random
import tomllib
from pathlib import Path

import pytest
import yaml

from metaexp.errors import TargetError
from metaexp.operators.target import (
    format_number,
    has_value,
    literal_text,
    numeric_constants,
    read_value,
    write_value,
    write_values,
)

# One file per kind holding the same values under the name each kind would use, with comments,
# blank lines and non-ASCII text around them so preservation checks have something to break.
SAMPLES: dict[str, tuple[bytes, dict[str, str]]] = {
    "train.py": (
        "# entraînement — café\n\nimport os\n\nLR = 3e-3  # learning rate\n"
        "DEPTH: int = 8\nOFFSET = -0.5  # négatif\nOPT = 'adam'\nFLAG = True\n".encode(),
        {"lr": "LR", "depth": "DEPTH", "offset": "OFFSET", "opt": "OPT", "flag": "FLAG"},
    ),
    "config.yaml": (
        "# réglages\nmodel:\n  lr: 3e-3  # learning rate\n  depth: 8\n\n  offset: -0.5\n"
        "opt: adam  # ünïcode\nflag: true\n".encode(),
        {"lr": "model.lr", "depth": "model.depth", "offset": "model.offset", "opt": "opt", "flag": "flag"},
    ),
    "config.json": (
        '{\n  "model": {"lr": 3e-3, "depth": 8, "offset": -0.5},\n'
        '  "opt": "adam", "note": "café",\n  "flag": true\n}\n'.encode(),
        {"lr": "model.lr", "depth": "model.depth", "offset": "model.offset", "opt": "opt", "flag": "flag"},
    ),
    "config.toml": (
        '# réglages\nopt = "adam"  # ünïcode\nflag = true\n\n[model]\nlr = 3e-3  # learning rate\n'
        "depth = 8\noffset = -0.5\n".encode(),
        {"lr": "model.lr", "depth": "model.depth", "offset": "model.offset", "opt": "opt", "flag": "flag"},
    ),
}
KINDS = list(SAMPLES)
NEW_VALUES = {"lr": 0.0042, "depth": 12, "offset": -1.25, "opt": "sgd", "flag": False}


def spliced(old: bytes, new: bytes) -> tuple[bytes, bytes]:
    """The differing middle of old and new, after their common prefix and suffix."""
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    return old[head : len(old) - tail], new[head : len(new) - tail]


# ---------------------------------------------------------------------------- contract, all kinds


@pytest.mark.parametrize("path", KINDS)
def test_read_every_value(path: str) -> None:
    text, names = SAMPLES[path]
    expected = {"lr": 0.003, "depth": 8, "offset": -0.5, "opt": "adam", "flag": True}
    for key, name in names.items():
        got = read_value(path, text, name)
        assert got == expected[key] and type(got) is type(expected[key]), (key, got)
        assert has_value(path, text, name)


@pytest.mark.parametrize("path", KINDS)
@pytest.mark.parametrize("key", list(NEW_VALUES))
def test_write_round_trip_changes_only_the_literal(path: str, key: str, tmp_path: Path) -> None:
    text, names = SAMPLES[path]
    target = tmp_path / path
    target.write_bytes(text)
    new = write_value(path, target.read_bytes(), names[key], NEW_VALUES[key])
    target.write_bytes(new)
    assert read_value(path, target.read_bytes(), names[key]) == NEW_VALUES[key]
    old_part, new_part = spliced(text, new)
    assert b"\n" not in old_part + new_part and b"#" not in old_part + new_part
    for other, name in names.items():  # every other value is untouched
        if other != key:
            assert read_value(path, new, name) == read_value(path, text, name)


@pytest.mark.parametrize("path", KINDS)
def test_several_values_written_in_one_pass_equal_one_at_a_time(path: str) -> None:
    """write_values splices every literal into the original text at once: the same bytes as
    writing the values one after another, in any order of the names."""
    text, names = SAMPLES[path]
    one_by_one = text
    for key in NEW_VALUES:
        one_by_one = write_value(path, one_by_one, names[key], NEW_VALUES[key], exact=True)
    for order in (list(NEW_VALUES), list(reversed(NEW_VALUES))):
        values = {names[key]: NEW_VALUES[key] for key in order}
        assert write_values(path, text, values, exact=True) == one_by_one
    bad = {names["lr"]: 0.5, names["depth"]: float("nan")}
    with pytest.raises(TargetError, match="not a finite number"):
        write_values(path, text, bad)


@pytest.mark.parametrize("path", KINDS)
def test_written_file_still_loads_with_the_standard_parser(path: str) -> None:
    text, names = SAMPLES[path]
    for key, value in NEW_VALUES.items():
        text = write_value(path, text, names[key], value)
    loaded = _load(path, text)
    assert loaded["lr"] == 0.0042 and loaded["opt"] == "sgd" and loaded["flag"] is False


def _load(path: str, text: bytes) -> dict[str, object]:
    if path.endswith(".py"):
        scope: dict[str, object] = {}
        exec(text, scope)
        return {"lr": scope["LR"], "opt": scope["OPT"], "flag": scope["FLAG"]}
    data = {".json": json.loads, ".toml": tomllib.loads}.get(Path(path).suffix, yaml.safe_load)(text.decode())
    return {"lr": data["model"]["lr"], "opt": data["opt"], "flag": data["flag"]}


@pytest.mark.parametrize("path", KINDS)
def test_missing_name_error_names_file_and_key(path: str) -> None:
    text, _ = SAMPLES[path]
    assert not has_value(path, text, "model.nope")
    with pytest.raises(TargetError, match=rf"{path}: .*model\.nope"):
        read_value(path, text, "model.nope")
    with pytest.raises(TargetError, match=path):
        write_value(path, text, "model.nope", 1)


@pytest.mark.parametrize("path", KINDS)
def test_crlf_and_unicode_survive(path: str) -> None:
    text, names = SAMPLES[path]
    crlf = text.replace(b"\n", b"\r\n")
    new = write_value(path, crlf, names["lr"], 0.0042)
    assert new.count(b"\r\n") == crlf.count(b"\r\n") and new.count(b"\n") == crlf.count(b"\n")
    assert read_value(path, new, names["lr"]) == 0.0042
    assert new.replace(b"4.2e-3", b"3e-3") == crlf


@pytest.mark.parametrize("path", KINDS)
def test_random_floats_read_back_as_their_formatted_value(path: str) -> None:
    rng = random.Random(0)
    text, names = SAMPLES[path]
    for _ in range(300):
        x = rng.choice([1, -1]) * 10 ** rng.uniform(-12, 12) * rng.random()
        new = write_value(path, text, names["offset"], x)
        assert read_value(path, new, names["offset"]) == float(format_number(x))
        new = write_value(path, text, names["lr"], x)  # the scientific-notation style
        assert read_value(path, new, names["lr"]) == float(format_number(x))


def test_unsupported_suffix() -> None:
    with pytest.raises(TargetError, match=r"notes\.txt.*'\.txt'"):
        read_value("notes.txt", b"a = 1\n", "a")


def test_non_utf8_is_rejected_by_name() -> None:
    with pytest.raises(TargetError, match=r"train\.py: not UTF-8"):
        read_value("train.py", b"# \xff\nX = 1\n", "X")


# ---------------------------------------------------------------------------- .py


def test_py_last_assignment_wins() -> None:
    text = b"X = 1\nY = 2\nX = 3  # the one that counts\n"
    assert read_value("t.py", text, "X") == 3
    assert write_value("t.py", text, "X", 7) == b"X = 1\nY = 2\nX = 7  # the one that counts\n"
    assert numeric_constants("t.py", text) == {"X": 3, "Y": 2}


def test_py_nested_names_are_not_found() -> None:
    text = b"A = 1\ndef f():\n    B = 2\nif A:\n    C = 3\nclass K:\n    D = 4\n"
    assert has_value("t.py", text, "A")
    for name in "BCD":
        assert not has_value("t.py", text, name)
    with pytest.raises(TargetError, match=r"t\.py: no module-level assignment to C \(found: A\)"):
        read_value("t.py", text, "C")


def test_py_negative_scientific_and_annotated() -> None:
    text = "s = 'é'; X: float = - 3e-3  # neg\nY = +2\n".encode()
    assert read_value("t.py", text, "X") == -0.003
    assert read_value("t.py", text, "Y") == 2
    new = write_value("t.py", text, "X", 0.0042)
    assert new == "s = 'é'; X: float = 4.2e-3  # neg\nY = +2\n".encode()
    assert write_value("t.py", text, "Y", -1.5) == "s = 'é'; X: float = - 3e-3  # neg\nY = -1.5\n".encode()


def test_py_multiline_string_and_bom() -> None:
    text = b'\xef\xbb\xbfDOC = """one\r\ntwo"""\r\nN = 5\r\n'
    assert read_value("t.py", text, "DOC") == "one\ntwo"
    assert write_value("t.py", text, "DOC", "x") == b'\xef\xbb\xbfDOC = "x"\r\nN = 5\r\n'
    assert write_value("t.py", text, "N", 6) == b'\xef\xbb\xbfDOC = """one\r\ntwo"""\r\nN = 6\r\n'


def test_py_strings_none_and_bools() -> None:
    text = b"A = 'x'\nB = \"y\"\nC = None\nD = False\n"
    new = write_value("t.py", text, "A", "it's")
    new = write_value("t.py", new, "B", 'say "hi"')
    new = write_value("t.py", new, "C", 1.5)
    new = write_value("t.py", new, "D", None)
    assert new == b'A = "it\'s"\nB = "say \\"hi\\""\nC = 1.5\nD = None\n'


def test_py_syntax_error_names_the_line() -> None:
    with pytest.raises(TargetError, match=r"t\.py: syntax error at line 2"):
        read_value("t.py", b"X = 1\nY = (\n", "X")


def test_py_expression_and_chained_assignments_are_refused() -> None:
    text = b"BASE = 2\nX = BASE * 3\nA = B = 1\nT = (1, 2)\n"
    for name in ("X", "T"):
        with pytest.raises(TargetError, match=rf"t\.py: {name} is not a .*literal \(line"):
            read_value("t.py", text, name)
    with pytest.raises(TargetError, match="chained"):
        write_value("t.py", text, "A", 2)
    assert numeric_constants("t.py", text) == {"BASE": 2}


def test_numeric_constants_skips_bools_strings_and_lowercase() -> None:
    text = (
        b"LR = 1e-3\nN_HEAD: int = 4\nFLAG = True\nNAME = 'x'\nlower = 3\nNONE = None\n"
        b"NEG = -2\nMixed_Case = 1\nX2 = 0.5\nif True:\n    INNER = 1\n"
    )
    consts = numeric_constants("t.py", text)
    assert consts == {"LR": 1e-3, "N_HEAD": 4, "NEG": -2, "X2": 0.5}
    assert list(consts) == ["LR", "N_HEAD", "NEG", "X2"]
    assert numeric_constants("c.yaml", b"LR: 1\n") == {}


# ---------------------------------------------------------------------------- .yaml / .json


def test_yaml_dotted_names() -> None:
    text = b"a.b: 1\na:\n  b: 2\n  c:\n    d: 3\nitems:\n  - 4\n  - {x: 5}\n"
    assert read_value("c.yaml", text, "a.b") == 1  # the literal dotted key first
    assert read_value("c.yaml", text, "a.c.d") == 3
    assert read_value("c.yaml", text, "items.0") == 4
    assert read_value("c.yaml", text, "items.1.x") == 5
    with pytest.raises(TargetError, match=r"c\.yaml: key 'a\.c\.e' not found"):
        read_value("c.yaml", text, "a.c.e")
    with pytest.raises(TargetError, match="holds a mapping"):
        read_value("c.yaml", text, "a.c")


def test_yaml_written_numbers_are_floats_to_pyyaml() -> None:
    text = b"lr: 3e-3\nb: 0.5\n"
    assert read_value("c.yaml", text, "lr") == 0.003  # YAML 1.1 calls 3e-3 a string
    new = write_value("c.yaml", text, "lr", 1e-5)
    assert new == b"lr: 1.0e-5\nb: 0.5\n"
    new = write_value("c.yaml", new, "b", 1.5e-7)
    assert yaml.safe_load(new) == {"lr": 1e-5, "b": 1.5e-7}


def test_yaml_strings_are_quoted_when_they_would_parse_as_something_else() -> None:
    text = b"s: adam\nq: 'x'\n"
    for value in ("true", "null", "1e-3", "12", "a: b", "x # y", "yes", ""):
        new = write_value("c.yaml", text, "s", value)
        assert yaml.safe_load(new)["s"] == value
    assert write_value("c.yaml", text, "s", "sgd") == b"s: sgd\nq: 'x'\n"
    assert write_value("c.yaml", text, "q", "it's") == b"s: adam\nq: 'it''s'\n"


def test_yaml_empty_value_anchor_tag_and_block() -> None:
    text = b"empty:\nbase: &b 1\nalias: *b\ntagged: !!str 5\nblock: |\n  hi\nnext: 2\n"
    assert read_value("c.yaml", text, "empty") is None
    assert write_value("c.yaml", text, "empty", 3).startswith(b"empty: 3\nbase")
    assert b'tagged: !!str "6"\n' in write_value("c.yaml", text, "tagged", "6")
    assert read_value("c.yaml", write_value("c.yaml", text, "tagged", "six"), "tagged") == "six"
    with pytest.raises(TargetError, match="anchor"):
        write_value("c.yaml", text, "alias", 2)
    assert read_value("c.yaml", text, "block") == "hi\n"
    with pytest.raises(TargetError, match="block scalar"):
        write_value("c.yaml", text, "block", "x")


def test_json_with_tabs_and_compact_separators() -> None:
    text = b'{\n\t"lr":1e-3,\n\t"name":\t"x",\n\t"a.b": {"c": [1, 2.5]}\n}'
    assert read_value("c.json", text, "lr") == 0.001
    assert read_value("c.json", text, "a.b.c.1") == 2.5
    new = write_value("c.json", text, "name", 'q"\n')
    new = write_value("c.json", new, "lr", 0.25)
    assert json.loads(new) == {"lr": 0.25, "name": 'q"\n', "a.b": {"c": [1, 2.5]}}
    assert new == b'{\n\t"lr":2.5e-1,\n\t"name":\t"q\\"\\n",\n\t"a.b": {"c": [1, 2.5]}\n}'


# ---------------------------------------------------------------------------- .toml


def test_toml_tables_quoted_keys_and_comments() -> None:
    text = b'top = 1\n[model]\nlr = 3e-3 # c\n"q.k" = \'lit\'\n[a.b]\nc = 0x10\ndotted.key = "v"\n'
    assert read_value("c.toml", text, "model.q.k") == "lit"
    assert read_value("c.toml", text, "a.b.c") == 16
    assert read_value("c.toml", text, "a.b.dotted.key") == "v"
    new = write_value("c.toml", text, "model.lr", -2.0)
    new = write_value("c.toml", new, "model.q.k", "new")
    assert new == text.replace(b"3e-3 #", b"-2e0 #").replace(b"'lit'", b"'new'")
    assert tomllib.loads(new.decode())["model"]["lr"] == -2.0


def test_toml_skips_multiline_values_and_array_tables() -> None:
    text = b'arr = [\n  1,\n  [2],\n]\ns = """\nfake = 1\n[fake]\n"""\nafter = 2\n[[runs]]\nz = 1\n'
    assert read_value("c.toml", text, "after") == 2
    assert not has_value("c.toml", text, "fake")
    assert not has_value("c.toml", text, "runs.z")
    with pytest.raises(TargetError, match=r"c\.toml: key 'arr' holds an array"):
        read_value("c.toml", text, "arr")
    with pytest.raises(TargetError, match="multi-line string"):
        read_value("c.toml", text, "s")


def test_toml_refuses_none_and_dates() -> None:
    text = b"x = 1\nd = 1979-05-27\n"
    with pytest.raises(TargetError, match="no null"):
        write_value("c.toml", text, "x", None)
    with pytest.raises(TargetError, match="date"):
        read_value("c.toml", text, "d")


# ---------------------------------------------------------------------------- format_number


@pytest.mark.parametrize(
    ("value", "like", "text"),
    [
        (0.0042, None, "0.0042"),
        (4.2e-05, None, "4.2e-05"),
        (3.0, None, "3.0"),
        (1234567.0, None, "1.235e+06"),
        (7, None, "7"),
        (-0.5, None, "-0.5"),
        (0.0042, "3e-3", "4.2e-3"),
        (0.003, "3e-3", "3e-3"),
        (1234567.0, "1e-3", "1.235e6"),
        (0.0042, "-1E-3", "4.2E-3"),
        (0.0042, "0x1E", "0.0042"),
        (5, "3e-3", "5"),
    ],
)
def test_format_number(value: float, like: str | None, text: str) -> None:
    assert format_number(value, like) == text


def test_format_number_is_a_float_literal_within_four_digits() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        x = rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)
        for like in (None, "1e-3"):
            text = format_number(x, like)
            assert "." in text or "e" in text
            assert math.isclose(float(text), x, rel_tol=5e-4)


def test_exact_numbers_read_back_as_the_same_float_in_every_kind() -> None:
    """exact: a sampler's point is the point evaluated (the shortest literal, any file kind)."""
    rng = random.Random(1)
    texts = {
        "p.py": b"X = 0.5\nE = 1e-3\n",
        "c.yaml": b"X: 0.5\nE: 1.0e-3\n",
        "c.json": b'{"X": 0.5, "E": 1e-3}',
    }
    for _ in range(500):
        x = rng.uniform(-1, 1) * 10 ** rng.randint(-12, 12)
        for path, text in texts.items():
            for name in ("X", "E"):
                assert read_value(path, write_value(path, text, name, x, exact=True), name) == x
    assert format_number(2.0801648349233237, exact=True) == "2.0801648349233237"
    assert format_number(0.0042, "3e-3", exact=True) == "4.2e-3"
    assert format_number(0.1, exact=True) == format_number(0.1) == "0.1"


def test_format_number_refuses_non_numbers() -> None:
    for bad in (math.inf, math.nan, True):
        with pytest.raises(TargetError):
            format_number(bad)


def test_literal_text_per_kind() -> None:
    assert literal_text("t.py", None) == "None"
    assert literal_text("t.py", True) == "True"
    assert literal_text("c.yaml", True) == "true"
    assert literal_text("c.json", None) == "null"
    assert literal_text("c.toml", False) == "false"
    assert literal_text("c.yaml", 1e-5) == "1.0e-05"
    assert literal_text("c.json", "a") == '"a"'
