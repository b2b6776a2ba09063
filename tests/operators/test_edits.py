"""Parsing and applying a model's edit replies: both formats, their tolerated mistakes, every refusal."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest

from metaexp.operators.edit_reply import EXAMPLE_HYPOTHESIS, EXAMPLE_NAME, EXAMPLE_OTHER, EXAMPLE_PATH
from metaexp.operators.edits import (
    EditError,
    EditRejected,
    ParsedEdit,
    apply_reply,
    edit_format_instructions,
    evolve_regions,
)

TRAIN = b"import math\n\nLEARNING_RATE = 3e-3\nBATCH_SIZE = 32\n\n\ndef lr(step):\n    return LEARNING_RATE\n"
MODEL = b"DEPTH = 4\nWIDTH = 128\n"
ONE = {"train.py": TRAIN}
TWO = {"train.py": TRAIN, "model.py": MODEL}
TARGETS = ["train.py", "model.py", "notes/*.md"]


def block(search: str, replace: str, path: str | None = "train.py") -> str:
    head = f"{path}\n" if path else ""
    return f"{head}<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def diff(reply: str, files: dict[str, bytes] = ONE, **kw: object) -> ParsedEdit:
    return apply_reply(reply, "diff", files, targets=TARGETS, **kw)  # type: ignore[arg-type]


def rewrite(reply: str, files: dict[str, bytes] = ONE) -> ParsedEdit:
    return apply_reply(reply, "rewrite", files, targets=TARGETS)


# --- diff format


def test_single_block() -> None:
    edit = diff("Hypothesis: a larger step\n" + block("LEARNING_RATE = 3e-3\n", "LEARNING_RATE = 4e-3\n"))
    assert edit.files == {"train.py": TRAIN.replace(b"3e-3", b"4e-3")}
    assert edit.description == "a larger step"


def test_blocks_apply_in_order() -> None:
    reply = block("LEARNING_RATE = 3e-3\n", "LEARNING_RATE = 4e-3\n") + block(
        "LEARNING_RATE = 4e-3\nBATCH_SIZE = 32\n", "LEARNING_RATE = 5e-3\nBATCH_SIZE = 64\n"
    )
    new = diff(reply).files["train.py"]
    assert b"LEARNING_RATE = 5e-3\nBATCH_SIZE = 64\n" in new


def test_several_files_fenced_with_decorated_paths() -> None:
    reply = (
        "Hypothesis: deeper and faster\n\n### train.py\n```python\n"
        + block("LEARNING_RATE = 3e-3\n", "LEARNING_RATE = 4e-3\n", None)
        + "```\n\n**File: `model.py`**\n```\n"
        + block("DEPTH = 4\n", "DEPTH = 6\n", None)
        + "```\n"
    )
    edit = diff(reply, TWO)
    assert edit.files == {
        "train.py": TRAIN.replace(b"3e-3", b"4e-3"),
        "model.py": b"DEPTH = 6\nWIDTH = 128\n",
    }


def test_path_in_fence_info_and_inside_fence() -> None:
    reply = "```model.py\n" + block("DEPTH = 4\n", "DEPTH = 5\n", None) + "```\n"
    assert diff(reply, TWO).files == {"model.py": b"DEPTH = 5\nWIDTH = 128\n"}
    reply = "```\n`model.py`:\n" + block("DEPTH = 4\n", "DEPTH = 5\n", None) + "```\n"
    assert diff(reply, TWO).files == {"model.py": b"DEPTH = 5\nWIDTH = 128\n"}


def test_missing_path_with_one_target_and_inherited_path() -> None:
    assert diff(block("BATCH_SIZE = 32\n", "BATCH_SIZE = 16\n", None)).files["train.py"].count(b"16") == 1
    reply = block("DEPTH = 4\n", "DEPTH = 5\n", "model.py") + block("WIDTH = 128\n", "WIDTH = 96\n", None)
    assert diff(reply, TWO).files == {"model.py": b"DEPTH = 5\nWIDTH = 96\n"}
    with pytest.raises(EditError, match="names no file"):
        diff(block("DEPTH = 4\n", "DEPTH = 5\n", None), TWO)


def test_odd_marker_lengths_and_crlf_reply() -> None:
    reply = (
        "train.py\r\n<<<<< SEARCH\r\nBATCH_SIZE = 32\r\n=========\r\nBATCH_SIZE = 8\r\n>>>>>>>>> REPLACE\r\n"
    )
    assert b"BATCH_SIZE = 8\n" in diff(reply).files["train.py"]


def test_crlf_file_keeps_crlf() -> None:
    files = {"train.py": TRAIN.replace(b"\n", b"\r\n")}
    new = diff(block("LEARNING_RATE = 3e-3\n", "LEARNING_RATE = 4e-3\nWARMUP = 10\n"), files).files
    assert new["train.py"] == files["train.py"].replace(b"3e-3\r\n", b"4e-3\r\nWARMUP = 10\r\n")


def test_file_without_final_newline_keeps_it() -> None:
    files = {"model.py": b"DEPTH = 4\nWIDTH = 128"}
    assert diff(block("WIDTH = 128\n", "WIDTH = 64\n", "model.py"), files).files == {
        "model.py": b"DEPTH = 4\nWIDTH = 64"
    }


def test_trailing_whitespace_tolerated() -> None:
    files = {"train.py": b"A = 1   \nB = 2\n"}
    assert diff(block("A = 1\nB = 2  \n", "A = 3\nB = 2\n"), files).files == {"train.py": b"A = 3\nB = 2\n"}


def test_match_is_line_aligned_and_never_fuzzy() -> None:
    files = {"train.py": b"max = 1\nx = 1\n"}
    assert diff(block("x = 1\n", "x = 2\n"), files).files == {"train.py": b"max = 1\nx = 2\n"}
    with pytest.raises(EditError, match="not found"):
        diff(block("  x = 1\n", "x = 2\n"), files)


def test_not_found() -> None:
    with pytest.raises(EditError) as err:
        diff(block("LEARNING_RATE = 1e-3\nmore\n", "LEARNING_RATE = 4e-3\n"))
    assert str(err.value) == "SEARCH text not found in train.py: LEARNING_RATE = 1e-3"


def test_ambiguous() -> None:
    files = {"train.py": b"x = 0\npass\ny = 1\npass\nz = 2\npass\n"}
    with pytest.raises(EditError) as err:
        diff(block("pass\n", "return\n"), files)
    assert str(err.value) == "SEARCH text is ambiguous in train.py (3 matches); include more context"


def test_new_file() -> None:
    edit = diff(block("", "# Notes\n\nfaster\n", "notes/run.md"))
    assert edit.files == {"notes/run.md": b"# Notes\n\nfaster\n"}
    assert edit.description == "create notes/run.md (+3 lines)"
    with pytest.raises(EditError, match="does not exist"):
        diff(block("x\n", "y\n", "notes/run.md"))
    with pytest.raises(EditError, match=r"SEARCH section for train\.py is empty"):
        diff(block("", "y\n"))


@pytest.mark.parametrize(
    "reply, reason",
    [
        ("train.py\n<<<<<<< SEARCH\nA = 1\n>>>>>>> REPLACE\n", "no ======= line"),
        ("train.py\n<<<<<<< SEARCH\nA = 1\n=======\nA = 2\n", "no >>>>>>> REPLACE line"),
        ("train.py\n=======\nA = 2\n>>>>>>> REPLACE\n", "REPLACE without"),
        ("Just raise the learning rate a bit.", "no SEARCH/REPLACE block"),
    ],
)
def test_malformed(reply: str, reason: str) -> None:
    with pytest.raises(EditError, match=reason):
        diff(reply)


# --- rewrite format


def test_rewrite_with_path_line() -> None:
    edit = rewrite("Hypothesis: shallower\n\nmodel.py\n```python\nDEPTH = 2\nWIDTH = 128\n```\n", TWO)
    assert edit.files == {"model.py": b"DEPTH = 2\nWIDTH = 128\n"}
    assert edit.description == "shallower"


def test_rewrite_with_path_in_fence_info() -> None:
    reply = "```python model.py\nDEPTH = 2\nWIDTH = 64\n```\n\n```train.py\nLEARNING_RATE = 1\n```\n"
    assert rewrite(reply, TWO).files == {
        "model.py": b"DEPTH = 2\nWIDTH = 64\n",
        "train.py": b"LEARNING_RATE = 1\n",
    }


def test_rewrite_path_named_in_prose() -> None:
    reply = "Here is the new model.py:\n```python\nDEPTH = 2\nWIDTH = 128\n```\n"
    assert rewrite(reply, TWO).files == {"model.py": b"DEPTH = 2\nWIDTH = 128\n"}
    with pytest.raises(EditError, match="names no file"):
        rewrite("Here is model.py after train.py:\n```python\nDEPTH = 2\n```\n", TWO)


def test_rewrite_single_implicit_file() -> None:
    edit = rewrite("```\nDEPTH = 2\nWIDTH = 128\n```", {"model.py": MODEL})
    assert edit.files == {"model.py": b"DEPTH = 2\nWIDTH = 128\n"}
    assert edit.description == "edit model.py (+1 -1 lines)"
    with pytest.raises(EditError, match="names no file"):
        rewrite("```\nDEPTH = 2\n```\n", TWO)
    with pytest.raises(EditError, match="never closed"):
        rewrite("model.py\n```\nDEPTH = 2\n", TWO)


def test_rewrite_reply_in_diff_form_still_applies() -> None:
    assert rewrite(block("BATCH_SIZE = 32\n", "BATCH_SIZE = 16\n")).files["train.py"].count(b"= 16") == 1


# --- refusals


@pytest.mark.parametrize(
    "path", ["../outside.py", "/etc/passwd", "~/train.py", "..\\outside.py", "a/../../b.py"]
)
def test_path_escapes(path: str) -> None:
    with pytest.raises(EditRejected) as err:
        diff(block("", "x = 1\n", path))
    assert str(err.value) == f"path escapes the repository: {path}"


def test_outside_target() -> None:
    with pytest.raises(EditRejected) as err:
        diff(block("", "x = 1\n", "evaluate.py"))
    assert str(err.value) == "edits a file outside target: evaluate.py"
    with pytest.raises(EditRejected, match=r"outside target: evaluate\.py"):
        rewrite("evaluate.py\n```\nx = 1\n```\n")


EVOLVING = b"import os\n# EVOLVE-BLOCK-START\nA = 1\nB = 2\n# EVOLVE-BLOCK-END\nC = 3\n"


def test_evolve_regions() -> None:
    text = EVOLVING.decode()
    assert [text[s:e] for s, e in evolve_regions(text) or []] == ["A = 1\nB = 2\n"]
    assert evolve_regions("A = 1\n") is None
    assert evolve_regions("# EVOLVE-BLOCK-START\nA = 1\n") == []


def test_evolve_block_inside_allowed_outside_rejected() -> None:
    files = {"train.py": EVOLVING}
    assert diff(block("B = 2\n", "B = 3\nD = 4\n"), files).files["train.py"] == EVOLVING.replace(
        b"B = 2\n", b"B = 3\nD = 4\n"
    )
    for search, replace in [("C = 3\n", "C = 4\n"), ("# EVOLVE-BLOCK-END\n", "")]:
        with pytest.raises(EditRejected) as err:
            diff(block(search, replace), files)
        assert str(err.value) == "changes train.py outside its EVOLVE-BLOCK regions"


def test_oversized() -> None:
    with pytest.raises(EditRejected, match="over the 100-byte limit"):
        diff(block("BATCH_SIZE = 32\n", "BATCH_SIZE = 32\n" + "#" * 100 + "\n"), max_file_bytes=100)


def test_non_utf8_target() -> None:
    with pytest.raises(EditError, match="not UTF-8"):
        diff(block("A\n", "B\n"), {"train.py": b"\xff\xfeA\n"})


@pytest.mark.parametrize("reply", ["", "  \n\t\n"])
def test_empty(reply: str) -> None:
    with pytest.raises(EditError, match="empty"):
        diff(reply)


def test_changes_nothing() -> None:
    with pytest.raises(EditError, match="changes nothing"):
        diff(block("BATCH_SIZE = 32\n", "BATCH_SIZE = 32\n"))
    with pytest.raises(EditError, match="changes nothing"):
        rewrite("train.py\n```\n" + TRAIN.decode() + "```\n")


def test_garbage_gives_edit_error() -> None:
    rng = random.Random(0)
    alphabet = "ab =#`~<>\n\r\t./\\:*\"'\x00\ud800é"
    for fmt in ("diff", "rewrite"):
        for _ in range(300):
            reply = "".join(rng.choice(alphabet) for _ in range(rng.randrange(200)))
            with pytest.raises(EditError):
                apply_reply(reply, fmt, TWO, targets=TARGETS)


def test_shuffled_replies_fail_only_as_edit_errors() -> None:
    rng = random.Random(0)
    pieces = [*block("DEPTH = 4\n", "DEPTH = 5\n", "model.py").split("\n"), "```", "```python train.py", ""]
    for fmt in ("diff", "rewrite"):
        for _ in range(300):
            reply = "\n".join(rng.choice(pieces) for _ in range(rng.randrange(12)))
            with contextlib.suppress(EditError, EditRejected):
                apply_reply(reply, fmt, TWO, targets=TARGETS)


# --- the description and the prompt


@pytest.mark.parametrize(
    "head, description",
    [
        ("Hypothesis: raise the step size\n", "raise the step size"),
        ("**Hypothesis:** raise the step size\n", "raise the step size"),
        ("Sure!\nDescription: raise the step size\n\n", "raise the step size"),
        ("# raise the step size\n", "raise the step size"),
        ("# a larger step in train.py\n\n", "a larger step in train.py"),
        ("### train.py\n", "edit train.py (+2 -1 lines)"),
        ("", "edit train.py (+2 -1 lines)"),
        ("Here is my change:\n", "edit train.py (+2 -1 lines)"),
    ],
)
def test_description(head: str, description: str) -> None:
    reply = head + block("LEARNING_RATE = 3e-3\n", "LEARNING_RATE = 4e-3\nWARMUP = 10\n")
    assert diff(reply).description == description


@pytest.mark.parametrize("fmt", ["diff", "rewrite"])
def test_instructions_name_paths_and_their_example_applies(fmt: str) -> None:
    text = edit_format_instructions(fmt, ["model.py", "train.py"])
    assert "model.py" in text
    assert "train.py" in text
    assert "Hypothesis:" in text
    example = text[text.index(f"Hypothesis: {EXAMPLE_HYPOTHESIS}") :]
    edit = apply_reply(
        example, fmt, {EXAMPLE_PATH: f"{EXAMPLE_NAME} = 1\n".encode()}, targets=["example/*.py"]
    )
    assert f"{EXAMPLE_NAME} = 2\n".encode() in edit.files[EXAMPLE_PATH]


def test_no_name_of_the_prompts_example_occurs_in_a_shipped_target() -> None:
    """The example cannot be mistaken for lines of the file being edited (#14: 16-17 % of invalid
    rows once quoted the example's LEARNING_RATE line as if it were the target's)."""
    import fnmatch
    import re

    import yaml

    texts = [edit_format_instructions(f, ["t.py"]) for f in ("diff", "rewrite")]
    blocks = "".join(t[t.index("Example, ") :] for t in texts)
    names = set(re.findall(r"\b[A-Z][A-Z0-9_]{3,}\b", blocks)) - {"SEARCH", "REPLACE"}
    assert names == {EXAMPLE_NAME, EXAMPLE_OTHER}
    harnesses = Path(__file__).resolve().parents[2] / "harnesses"
    checked = 0
    for spec_path in harnesses.glob("**/*.yaml"):
        spec = yaml.safe_load(spec_path.read_text())
        if not isinstance(spec, dict) or "target" not in spec:
            continue
        for path in spec_path.parent.rglob("*"):
            rel = path.relative_to(spec_path.parent).as_posix()
            if path.is_file() and any(fnmatch.fnmatch(rel, t) for t in spec["target"]):
                text = path.read_text(errors="replace")
                assert not any(n in text for n in names) and EXAMPLE_PATH not in text, rel
                assert not (spec_path.parent / EXAMPLE_PATH).exists()
                checked += 1
    assert checked >= 5, checked
    with pytest.raises(ValueError):
        edit_format_instructions("unified", ["train.py"])
