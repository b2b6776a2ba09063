"""Apply a model's edit reply to the target files, refusing what it may not change.

edit_reply.py parses the reply into blocks; here each block's path is checked against the
targets, the blocks are applied in order, and the result must keep each file's encoding, size
limit and EVOLVE-BLOCK regions. A reply that does not apply is `invalid` (EditError); one that
applies but touches what it may not is `rejected` (EditRejected).
"""

from __future__ import annotations

import difflib
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass

from metaexp.operators.edit_reply import (
    EDIT_FORMATS,
    END_MARKER,
    MAX_DESCRIPTION,
    START_MARKER,
    Block,
    EditError,
    edit_format_instructions,
    hypothesis,
    parse_blocks,
)
from metaexp.record.workspace import matches

__all__ = [
    "EDIT_FORMATS",
    "END_MARKER",
    "MAX_DESCRIPTION",
    "START_MARKER",
    "EditError",
    "EditRejected",
    "ParsedEdit",
    "apply_reply",
    "edit_format_instructions",
    "evolve_regions",
]


@dataclass(frozen=True)
class ParsedEdit:
    description: str
    files: dict[str, bytes]  # new full contents of every changed file (only changed ones)


class EditRejected(Exception):
    """The reply applies but is not allowed; recorded as `rejected`."""


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
    blocks = _resolve(parse_blocks(lines, fmt, known), files, targets, inherit=fmt == "diff")
    sources = {p: _decode(p, files[p]) for p in dict.fromkeys(p for p, _ in blocks) if p in files}
    texts = _apply_blocks(blocks, {p: s.text for p, s in sources.items()})
    changed = _changes(sources, texts, max_file_bytes)
    if not changed:
        raise EditError("the reply changes nothing")
    description = hypothesis(lines, known) or _describe(sources, changed)
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


# --- checking each block's path


def _resolve(
    blocks: list[Block], files: Mapping[str, bytes], targets: list[str], *, inherit: bool
) -> list[tuple[str, Block]]:
    """Each block's checked, normalised path; a pathless block gets the previous or the only file."""
    only = next(iter(files)) if len(files) == 1 else None
    if not inherit and len(blocks) > 1:
        only = None
    resolved: list[tuple[str, Block]] = []
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


def _apply_blocks(blocks: list[tuple[str, Block]], texts: dict[str, str]) -> dict[str, str]:
    for path, block in blocks:
        texts[path] = _apply_block(block, path, texts.get(path))
    return texts


def _apply_block(block: Block, path: str, text: str | None) -> str:
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


# --- the description when the reply gives none


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
