"""YAML and JSON targets: a dotted key's scalar found through PyYAML's node marks.

JSON is read as YAML (every JSON document is one), so one locator serves both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import yaml

from metaexp.errors import TargetError
from metaexp.operators.target_span import Scalar, _decode, _listing, _Missing, _Span

_YAML_PROPS = re.compile(r"(?:[&!]\S*\s+)*")  # an anchor or tag before the scalar itself
_YAML_PLAIN = re.compile(r"[A-Za-z_][\w./-]*")  # strings safe to write unquoted
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def locate(path: str, text: bytes, name: str, *, json_mode: bool = False) -> _Span:
    source = _decode(path, text)
    try:
        # PyYAML rejects tabs between JSON tokens; a tab is never raw inside a JSON string, and
        # swapping it for a space keeps every character index.
        root = yaml.compose(source.replace("\t", " ") if json_mode else source, yaml.SafeLoader)
    except yaml.YAMLError as exc:
        kind = "JSON" if json_mode else "YAML"
        raise TargetError(f"{path}: cannot parse as {kind}: {' '.join(str(exc).split())}") from exc
    node = _yaml_lookup(root, name) if root is not None else None
    if node is None:
        raise _Missing(f"{path}: key {name!r} not found (found: {_listing(_yaml_paths(root))})")
    if not isinstance(node, yaml.ScalarNode):
        shape = "mapping" if isinstance(node, yaml.MappingNode) else "list"
        raise TargetError(f"{path}: key {name!r} holds a {shape}, not a single value")
    if _yaml_occurrences(root, node) > 1:
        raise TargetError(f"{path}: key {name!r} is shared through a YAML anchor; edit it by hand")
    start, end = node.start_mark.index, node.end_mark.index
    props = _YAML_PROPS.match(source, start, end)
    assert props is not None  # the pattern matches the empty string
    value = _yaml_value(path, name, node, tagged="!" in props.group())
    byte_start = len(source[: props.end()].encode("utf-8"))
    byte_end = byte_start + len(source[props.end() : end].encode("utf-8"))
    return _Span(byte_start, byte_end, value, block=node.style in ("|", ">"))


def _yaml_lookup(node: yaml.Node, name: str) -> yaml.Node | None:
    """The node at dotted `name`: a literal key with dots wins, then each split; last key wins."""
    if isinstance(node, yaml.MappingNode):
        pairs = [(k.value, v) for k, v in reversed(node.value) if isinstance(k, yaml.ScalarNode)]
        for key, value in pairs:
            if key == name:
                return value
        for key, value in pairs:
            if name.startswith(key + "."):
                found = _yaml_lookup(value, name[len(key) + 1 :])
                if found is not None:
                    return found
    elif isinstance(node, yaml.SequenceNode):
        head, dot, rest = name.partition(".")
        if head.isdigit() and int(head) < len(node.value):
            item = node.value[int(head)]
            return _yaml_lookup(item, rest) if dot else item
    return None


def _yaml_paths(node: yaml.Node | None, prefix: str = "", depth: int = 0) -> Iterator[str]:
    """Dotted paths of the mapping leaves, for error messages (depth-capped: aliases may loop)."""
    if not isinstance(node, yaml.MappingNode) or depth > 20:
        return
    for key, value in node.value:
        path = f"{prefix}{key.value}"
        if isinstance(value, yaml.MappingNode):
            yield from _yaml_paths(value, path + ".", depth + 1)
        else:
            yield path


def _yaml_occurrences(root: yaml.Node, target: yaml.Node) -> int:
    """How many places in the tree `target` appears; more than one means an alias shares it."""
    count, stack, budget = 0, [root], 100_000  # the budget stops alias bombs and cycles
    while stack and budget:
        node, budget = stack.pop(), budget - 1
        count += node is target
        if isinstance(node, yaml.MappingNode):
            stack.extend(item for pair in node.value for item in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    if not budget:
        raise TargetError("YAML aliases expand past 100000 nodes; refusing to edit this file")
    return count


def _yaml_value(path: str, name: str, node: yaml.ScalarNode, *, tagged: bool) -> Scalar:
    value = yaml.SafeLoader("").construct_object(node)
    # PyYAML follows YAML 1.1, where 1e-3 (no dot) is a string; a config author means a number.
    if isinstance(value, str) and node.style is None and not tagged and _NUMBER.fullmatch(value):
        return float(value) if re.search(r"[.eE]", value) else int(value)
    if value is None or isinstance(value, int | float | str | bool):
        return value
    raise TargetError(f"{path}: key {name!r} holds a {type(value).__name__}, not a plain value")


def number_literal(text: str) -> str:
    """PyYAML reads 1e-3 as a string: give the mantissa a '.' and the exponent a sign."""
    m = re.fullmatch(r"([-+]?[\d.]+)([eE])([-+]?)(\d+)", text)
    if m is None:
        return text
    mantissa = m[1] if "." in m[1] else m[1] + ".0"
    return f"{mantissa}{m[2]}{m[3] or '+'}{m[4]}"


def string_literal(value: str, like: str | None) -> str:
    quote = (like or "")[:1]
    if quote == "'" and value.isprintable():
        return "'" + value.replace("'", "''") + "'"
    if quote != '"' and _YAML_PLAIN.fullmatch(value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted one
