"""The edit-reply format: SEARCH/REPLACE blocks or whole files, how to ask for it, how to parse it.

Models get these formats wrong in a few predictable ways: fences around the blocks, a decorated
path line ("File: `train.py`"), 5-9 marker characters, CRLF, trailing whitespace. Those are
tolerated; nothing fuzzier is, so a reply either parses into blocks as written or is `invalid`
with a reason the model can act on. Applying the blocks to the files is edits.py's job.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection
from dataclasses import dataclass

EDIT_FORMATS = ("diff", "rewrite")
# The prompt's worked example: a file and names no target has, so a model cannot take the example's
# lines for lines of its own file (LEARNING_RATE = 3e-3 once was, in a file of constants).
EXAMPLE_PATH = "example/not_your_file.py"
EXAMPLE_NAME = "EXAMPLE_ONLY_SETTING"
EXAMPLE_OTHER = "EXAMPLE_ONLY_OTHER"
EXAMPLE_HYPOTHESIS = "one line on what the change does and why it should help"
MAX_DESCRIPTION = 200  # characters kept of the model's hypothesis line
START_MARKER = "EVOLVE-BLOCK-START"
END_MARKER = "EVOLVE-BLOCK-END"

_SEARCH = re.compile(r"\s*<{5,9}\s*SEARCH\s*", re.IGNORECASE)
_DIVIDER = re.compile(r"\s*={5,9}\s*")
_REPLACE = re.compile(r"\s*>{5,9}\s*REPLACE\s*", re.IGNORECASE)
_FENCE = re.compile(r"\s*(`{3,}|~{3,})\s*([^`]*?)\s*")
_HYPOTHESIS = re.compile(r"[\s#>*_-]*(?:hypothesis|description)\s*\**\s*[:\-–]\s*(.*)", re.IGNORECASE)
_PATH_CHARS = re.compile(r"[^\s`'\"<>|*?\x00-\x1f]+")
_EXTENSION = re.compile(r"\.\w+$")
_BACKTICKED = re.compile(r"`([^`\s]+)`")
_LABEL = re.compile(r"(?:file(?:name)?|path)\s*[:=]\s*", re.IGNORECASE)
_DECORATION = "`*\"' "
_LANGUAGES = {".py": "python", ".md": "markdown", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}


class EditError(Exception):
    """The reply does not apply; recorded as `invalid` with the message as reason."""


@dataclass(frozen=True)
class Block:
    path: str | None
    search: str | None  # None: `replace` is the whole file (rewrite format)
    replace: str
    line: int  # 1-based line of the block in the reply, for messages


# --- the format, for the prompt


def edit_format_instructions(fmt: str, paths: list[str]) -> str:
    """The instructions, naming the real paths, and a worked example on a file that is not one."""
    if fmt not in EDIT_FORMATS:
        raise ValueError(f"unknown edit format {fmt!r}; use one of {', '.join(EDIT_FORMATS)}")
    if not paths:
        raise ValueError("edit_format_instructions needs at least one target path")
    head = (
        "Start your reply with one line: `Hypothesis: <what you change and why it should help>`.\n"
        f"You may edit only these files: {', '.join(paths)}.\n"
        f"If a file has {START_MARKER} and {END_MARKER} marker lines, change only the lines between "
        "them; leave the marker lines and everything outside them exactly as they are.\n"
    )
    body = _diff_instructions() if fmt == "diff" else _rewrite_instructions()
    return head + body


def _diff_instructions() -> str:
    return (
        "Give each change as a SEARCH/REPLACE block:\n"
        "1. a line with the file's path, exactly as written above;\n"
        "2. the line <<<<<<< SEARCH\n"
        "3. the lines to replace, copied exactly from the current file, with just enough context "
        "to match exactly one place;\n"
        "4. the line =======\n"
        "5. the new lines;\n"
        "6. the line >>>>>>> REPLACE\n"
        "Use several blocks for several changes; they apply in order, each to the result of the ones "
        "before. To create a new file, leave its SEARCH section empty.\n\n"
        f"Example, for a file that is not yours ({EXAMPLE_PATH}); write your real paths and quote your "
        "real lines:\n\n"
        f"Hypothesis: {EXAMPLE_HYPOTHESIS}\n\n"
        f"{EXAMPLE_PATH}\n<<<<<<< SEARCH\n{EXAMPLE_NAME} = 1\n=======\n{EXAMPLE_NAME} = 2\n>>>>>>> REPLACE\n"
    )


def _rewrite_instructions() -> str:
    fence = "```" + _LANGUAGES.get(posixpath.splitext(EXAMPLE_PATH)[1], "")
    return (
        "Give the complete new contents of each file you change: a line with the file's path, exactly "
        "as written above, then the whole file in a ``` fenced code block. Include every line, the "
        'unchanged ones too; never abbreviate with "..." or "rest unchanged". Leave out files you do '
        "not change.\n\n"
        f"Example, for a two-line file that is not yours ({EXAMPLE_PATH}); write your real paths and "
        "whole files:\n\n"
        f"Hypothesis: {EXAMPLE_HYPOTHESIS}\n\n"
        f"{EXAMPLE_PATH}\n{fence}\n{EXAMPLE_NAME} = 2\n{EXAMPLE_OTHER} = 3\n```\n"
    )


# --- parsing the reply into blocks


def parse_blocks(lines: list[str], fmt: str, known: Collection[str]) -> list[Block]:
    # A rewrite reply in diff form is still unambiguous; the reverse (a fenced snippet as a diff) is not.
    if fmt == "diff" or any(_SEARCH.fullmatch(line) for line in lines):
        return _parse_diff(lines, known)
    return _parse_rewrite(lines, known)


def _parse_diff(lines: list[str], known: Collection[str]) -> list[Block]:
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if _REPLACE.fullmatch(lines[i]):
            raise EditError(f"line {i + 1}: >>>>>>> REPLACE without a <<<<<<< SEARCH before it")
        if not _SEARCH.fullmatch(lines[i]):
            i += 1
            continue
        divider = _find_marker(lines, i, i + 1, _DIVIDER, "=======")
        end = _find_marker(lines, i, divider + 1, _REPLACE, ">>>>>>> REPLACE")
        path = _path_before_search(lines, i, known)
        blocks.append(Block(path, _join(lines[i + 1 : divider]), _join(lines[divider + 1 : end]), i + 1))
        i = end + 1
    if not blocks:
        raise EditError(
            "the reply has no SEARCH/REPLACE block: expected a path line, <<<<<<< SEARCH, the old lines, "
            "=======, the new lines, >>>>>>> REPLACE"
        )
    return blocks


def _find_marker(lines: list[str], opened: int, start: int, marker: re.Pattern[str], name: str) -> int:
    for j in range(start, len(lines)):
        if marker.fullmatch(lines[j]):
            return j
        if any(m.fullmatch(lines[j]) for m in (_SEARCH, _DIVIDER, _REPLACE)):
            raise EditError(f"the SEARCH block at line {opened + 1} has no {name} line before line {j + 1}")
    raise EditError(f"the SEARCH block at line {opened + 1} has no {name} line")


def _parse_rewrite(lines: list[str], known: Collection[str]) -> list[Block]:
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.fullmatch(lines[i])
        if not fence:
            i += 1
            continue
        end = _fence_end(lines, i, fence.group(1))
        path = _path_in_info(fence.group(2), known) or _path_before(lines, i, known)
        blocks.append(Block(path, None, _join(lines[i + 1 : end]), i + 1))
        i = end + 1
    if not blocks:
        raise EditError(
            "the reply has no fenced code block: put each whole file in ``` fences after its path"
        )
    return blocks


def _fence_end(lines: list[str], opened: int, fence: str) -> int:
    closing = re.compile(rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*")
    for j in range(opened + 1, len(lines)):
        if closing.fullmatch(lines[j]):
            return j
    raise EditError(f"the code block at line {opened + 1} is never closed")


def _join(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


# --- finding a block's path


def _path_before_search(lines: list[str], i: int, known: Collection[str]) -> str | None:
    """The path line above a SEARCH marker, looking through one fence opening (```python or ```train.py)."""
    j = _previous_nonblank(lines, i)
    fence = _FENCE.fullmatch(lines[j]) if j >= 0 else None
    if fence:
        return _path_in_info(fence.group(2), known) or _path_before(lines, j, known)
    return _path_from_line(lines[j], known) if j >= 0 else None


def _path_before(lines: list[str], i: int, known: Collection[str]) -> str | None:
    j = _previous_nonblank(lines, i)
    if j < 0 or _FENCE.fullmatch(lines[j]):
        return None
    return _path_from_line(lines[j], known)


def _previous_nonblank(lines: list[str], i: int) -> int:
    j = i - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    return j


def _path_in_info(info: str, known: Collection[str]) -> str | None:
    """A path in a fence's info string: ```python train.py, ```train.py, ```python title="train.py"."""
    for token in info.split():
        candidate = token.split("=", 1)[-1].strip(_DECORATION)
        if _looks_like_path(candidate, known):
            return candidate
    return None


def _path_from_line(line: str, known: Collection[str]) -> str | None:
    """A path line, else in prose one backticked path or one current target file named as a word."""
    if any(m.fullmatch(line) for m in (_SEARCH, _DIVIDER, _REPLACE)):
        return None
    label = _path_label(line, known)
    if label:
        return label
    quoted = {p for p in _BACKTICKED.findall(line) if _looks_like_path(p, known)}
    named = {w for w in (w.strip(".,:;!?()[]" + _DECORATION) for w in line.split()) if w in known}
    if len(quoted) == 1:
        return quoted.pop()
    return named.pop() if len(named) == 1 else None


def _path_label(line: str, known: Collection[str]) -> str | None:
    """The path of a line that is only a path: `train.py`, ### train.py, **File: `train.py`**, train.py:"""
    candidate = re.sub(r"^(?:#+|[-*>]+)\s*", "", line.strip()).strip(_DECORATION)
    candidate = _LABEL.sub("", candidate, count=1).strip(_DECORATION).rstrip(":").strip(_DECORATION)
    return candidate if _looks_like_path(candidate, known) else None


def _looks_like_path(text: str, known: Collection[str]) -> bool:
    if not _PATH_CHARS.fullmatch(text):
        return False
    return text in known or "/" in text or "\\" in text or bool(_EXTENSION.search(text))


# --- the description the reply gives


def hypothesis(lines: list[str], known: Collection[str]) -> str | None:
    """The model's `Hypothesis:` (or `Description:`) line before its first block, or a leading # line."""
    for line in lines:
        if _SEARCH.fullmatch(line) or _FENCE.fullmatch(line):
            break
        found = _HYPOTHESIS.fullmatch(line)
        if found and _clip(found.group(1)):
            return _clip(found.group(1))
    first = next((line.strip() for line in lines if line.strip()), "")
    if first.startswith("#") and _path_label(first, known) is None:
        return _clip(first.lstrip("#"))
    return None


def _clip(text: str) -> str:
    text = " ".join(text.strip().strip("*").split())
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"
