"""Parse a model's edit reply (SEARCH/REPLACE blocks or whole files) and apply it to the target files.

Models get these formats wrong in a few predictable ways: fences around the blocks, a decorated
path line ("File: `train.py`"), 5-9 marker characters, CRLF, trailing whitespace. Those are
tolerated; nothing fuzzier is, so a reply either applies as written or is `invalid` with a reason
the model can act on. A reply that applies but touches what it may not is `rejected`.
"""

from __future__ import annotations

import difflib
import posixpath
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from metaexp.record.workspace import matches

EDIT_FORMATS = ("diff", "rewrite")
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


@dataclass(frozen=True)
class ParsedEdit:
    description: str
    files: dict[str, bytes]  # new full contents of every changed file (only changed ones)


class EditError(Exception):
    """The reply does not apply; recorded as `invalid` with the message as reason."""


class EditRejected(Exception):
    """The reply applies but is not allowed; recorded as `rejected`."""


@dataclass(frozen=True)
class _Block:
    path: str | None
    search: str | None  # None: `replace` is the whole file (rewrite format)
    replace: str
    line: int  # 1-based line of the block in the reply, for messages


@dataclass(frozen=True)
class _Source:
    raw: str  # the file as decoded, byte-identical when encoded again
    text: str  # what edits work on: LF newlines, ending in a newline unless empty
    crlf: bool
    eol: bool  # the file ends with a newline (or is empty)


# --- the public entry points


def apply_reply(
    reply: str, fmt: str, files: Mapping[str, bytes], *, targets: list[str], max_file_bytes: int = 1_000_000
) -> ParsedEdit:
    """The changed files after applying `reply` (in `fmt`) to `files`, the current target files."""
    if fmt not in EDIT_FORMATS:
        raise ValueError(f"unknown edit format {fmt!r}; use one of {', '.join(EDIT_FORMATS)}")
    lines = reply.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not "".join(lines).strip():
        raise EditError("the reply is empty")
    known = frozenset(files)
    blocks = _resolve(_parse(lines, fmt, known), files, targets, inherit=fmt == "diff")
    sources = {p: _decode(p, files[p]) for p in dict.fromkeys(p for p, _ in blocks) if p in files}
    texts = _apply_blocks(blocks, {p: s.text for p, s in sources.items()})
    changed = _changes(sources, texts, max_file_bytes)
    if not changed:
        raise EditError("the reply changes nothing")
    description = _hypothesis(lines, known) or _describe(sources, changed)
    return ParsedEdit(description, changed)


def evolve_regions(text: str) -> list[tuple[int, int]] | None:
    """Spans strictly between EVOLVE-BLOCK-START and -END marker lines; None without markers.

    Unpaired markers open no region, so a file with only broken markers allows no change at all.
    """
    if START_MARKER not in text and END_MARKER not in text:
        return None
    spans: list[tuple[int, int]] = []
    start: int | None = None
    pos = 0
    for line in text.split("\n"):
        after = min(pos + len(line) + 1, len(text))
        if START_MARKER in line and start is None:
            start = after
        elif END_MARKER in line and start is not None:
            spans.append((start, pos))
            start = None
        pos = after
    return spans


def edit_format_instructions(fmt: str, paths: list[str]) -> str:
    """The instructions and a worked example for the prompt, naming the real paths."""
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
    body = _diff_instructions(paths[0]) if fmt == "diff" else _rewrite_instructions(paths[0])
    return head + body


def _diff_instructions(path: str) -> str:
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
        "Example (the lines are an illustration; quote the real ones):\n\n"
        "Hypothesis: a larger learning rate converges further within the time budget\n\n"
        f"{path}\n<<<<<<< SEARCH\nLEARNING_RATE = 3e-3\n=======\nLEARNING_RATE = 4e-3\n>>>>>>> REPLACE\n"
    )


def _rewrite_instructions(path: str) -> str:
    fence = "```" + _LANGUAGES.get(posixpath.splitext(path)[1], "")
    return (
        "Give the complete new contents of each file you change: a line with the file's path, exactly "
        "as written above, then the whole file in a ``` fenced code block. Include every line, the "
        'unchanged ones too; never abbreviate with "..." or "rest unchanged". Leave out files you do '
        "not change.\n\n"
        "Example (a two-line file, as an illustration):\n\n"
        "Hypothesis: a larger learning rate converges further within the time budget\n\n"
        f"{path}\n{fence}\nLEARNING_RATE = 4e-3\nBATCH_SIZE = 64\n```\n"
    )


# --- parsing the reply into blocks


def _parse(lines: list[str], fmt: str, known: Collection[str]) -> list[_Block]:
    # A rewrite reply in diff form is still unambiguous; the reverse (a fenced snippet as a diff) is not.
    if fmt == "diff" or any(_SEARCH.fullmatch(line) for line in lines):
        return _parse_diff(lines, known)
    return _parse_rewrite(lines, known)


def _parse_diff(lines: list[str], known: Collection[str]) -> list[_Block]:
    blocks: list[_Block] = []
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
        blocks.append(_Block(path, _join(lines[i + 1 : divider]), _join(lines[divider + 1 : end]), i + 1))
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


def _parse_rewrite(lines: list[str], known: Collection[str]) -> list[_Block]:
    blocks: list[_Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.fullmatch(lines[i])
        if not fence:
            i += 1
            continue
        end = _fence_end(lines, i, fence.group(1))
        path = _path_in_info(fence.group(2), known) or _path_before(lines, i, known)
        blocks.append(_Block(path, None, _join(lines[i + 1 : end]), i + 1))
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


def _resolve(
    blocks: list[_Block], files: Mapping[str, bytes], targets: list[str], *, inherit: bool
) -> list[tuple[str, _Block]]:
    """Each block's checked, normalised path; a pathless block gets the previous or the only file."""
    only = next(iter(files)) if len(files) == 1 else None
    if not inherit and len(blocks) > 1:
        only = None
    resolved: list[tuple[str, _Block]] = []
    previous: str | None = None
    for block in blocks:
        path = block.path or (previous if inherit else None) or only
        if path is None:
            raise EditError(f"the block at line {block.line} names no file; put its path on the line before")
        previous = _checked_path(path, targets)
        resolved.append((previous, block))
    return resolved


def _checked_path(path: str, targets: list[str]) -> str:
    escapes = "\\" in path or path.startswith(("/", "~")) or re.match(r"[A-Za-z]:", path)
    if escapes or ".." in path.split("/"):
        raise EditRejected(f"path escapes the repository: {path}")
    clean = posixpath.normpath(path)
    if clean == ".":
        raise EditError(f"not a file path: {path}")
    if not matches(clean, targets):
        raise EditRejected(f"edits a file outside target: {clean}")
    return clean


# --- applying blocks


def _decode(path: str, data: bytes) -> _Source:
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError:
        raise EditError(f"{path} is not UTF-8 text, so it cannot be edited") from None
    crlf = "\r\n" in raw and raw.count("\r\n") == raw.count("\n")
    text = raw.replace("\r\n", "\n") if crlf else raw
    eol = not text or text.endswith("\n")
    return _Source(raw, text if eol else text + "\n", crlf, eol)


def _apply_blocks(blocks: list[tuple[str, _Block]], texts: dict[str, str]) -> dict[str, str]:
    for path, block in blocks:
        texts[path] = _apply_block(block, path, texts.get(path))
    return texts


def _apply_block(block: _Block, path: str, text: str | None) -> str:
    if block.search is None:
        return block.replace
    if not block.search.strip():
        if text is None or not text.strip():
            return block.replace
        raise EditError(
            f"the SEARCH section for {path} is empty but {path} exists; quote the lines to replace"
        )
    if text is None:
        raise EditError(f"{path} does not exist; to create it, leave the SEARCH section empty")
    start, end = _locate(text, block.search, path)
    return text[:start] + block.replace + text[end:]


def _locate(text: str, search: str, path: str) -> tuple[int, int]:
    """The one line-aligned match of `search`: exact, else ignoring trailing whitespace per line."""
    spans = _exact_spans(text, search) or _loose_spans(text, search)
    if len(spans) == 1:
        return spans[0]
    if spans:
        raise EditError(f"SEARCH text is ambiguous in {path} ({len(spans)} matches); include more context")
    first = next(line.strip() for line in search.split("\n") if line.strip())
    raise EditError(f"SEARCH text not found in {path}: {first[:100]}")


def _exact_spans(text: str, search: str) -> list[tuple[int, int]]:
    spans = []
    start = text.find(search)
    while start != -1:
        if start == 0 or text[start - 1] == "\n":
            spans.append((start, start + len(search)))
        start = text.find(search, start + 1)
    return spans


def _loose_spans(text: str, search: str) -> list[tuple[int, int]]:
    have = text.split("\n")[:-1]  # text ends with "\n"
    want = [line.rstrip() for line in search.split("\n")[:-1]]
    offsets = [0]
    for line in have:
        offsets.append(offsets[-1] + len(line) + 1)
    stripped = [line.rstrip() for line in have]
    n = len(want)
    return [
        (offsets[i], offsets[i + n])
        for i in range(len(have) - n + 1)
        if stripped[i] == want[0] and stripped[i : i + n] == want
    ]


def _changes(
    sources: Mapping[str, _Source], texts: Mapping[str, str], max_file_bytes: int
) -> dict[str, bytes]:
    changed: dict[str, bytes] = {}
    for path, text in texts.items():
        source = sources.get(path)
        raw = _restore(text, source)
        if source is not None and raw == source.raw:
            continue
        try:
            data = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise EditError(f"the new {path} is not valid UTF-8 text") from None
        if len(data) > max_file_bytes:
            raise EditRejected(f"{path} would be {len(data):,} bytes, over the {max_file_bytes:,}-byte limit")
        if source is not None:
            _check_regions(path, source.raw, raw)
        changed[path] = data
    return changed


def _restore(text: str, source: _Source | None) -> str:
    """The file's own newline style and final-newline state back on edited text."""
    if source is None:
        return text
    if not source.eol and text.endswith("\n"):
        text = text[:-1]
    return text.replace("\n", "\r\n") if source.crlf else text


def _check_regions(path: str, old: str, new: str) -> None:
    before = evolve_regions(old)
    if before is None:
        return
    after = evolve_regions(new)
    if after is None or _outside(old, before) != _outside(new, after):
        raise EditRejected(f"changes {path} outside its EVOLVE-BLOCK regions")


def _outside(text: str, spans: list[tuple[int, int]]) -> list[str]:
    pieces, pos = [], 0
    for start, end in spans:
        pieces.append(text[pos:start])
        pos = end
    return [*pieces, text[pos:]]


# --- the description


def _hypothesis(lines: list[str], known: Collection[str]) -> str | None:
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


def _describe(sources: Mapping[str, _Source], changed: Mapping[str, bytes]) -> str:
    parts = []
    for path, data in changed.items():
        new = data.decode("utf-8").splitlines()
        source = sources.get(path)
        if source is None:
            parts.append(f"create {path} (+{len(new)} lines)")
            continue
        ops = difflib.SequenceMatcher(None, source.raw.splitlines(), new).get_opcodes()
        added = sum(j2 - j1 for tag, _, _, j1, j2 in ops if tag in ("replace", "insert"))
        removed = sum(i2 - i1 for tag, i1, i2, _, _ in ops if tag in ("replace", "delete"))
        parts.append(f"edit {path} (+{added} -{removed} lines)")
    return "; ".join(parts)
