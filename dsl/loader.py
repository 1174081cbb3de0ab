"""YAML text -> plain JSON-like data with the source position of every key and value.

The loader is the only place that parses YAML (ruamel.yaml's composer, YAML 1.2, so ``on:``
stays a string). It rejects what would make later stages guess: bad encoding, tabs, duplicate keys,
non-string keys, tags, multi-documents, and alias expansion past a limit (a "billion
laughs" file fails in milliseconds). Everything downstream (schema, checks, compiler) works
on :class:`Document`, never on ruamel objects.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .diagnostics import Diagnostic, Span
from .errors import PlaybookError

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64
SCAN_DEPTH = 1000  # a cheap bound before parsing; the builder then enforces MAX_DEPTH

JsonPath = tuple[str | int, ...]
Position = tuple[int, int]


@dataclass(frozen=True)
class Document:
    """A loaded YAML file: its plain data and where each piece of it stands in the text."""

    file: str
    text: str
    data: dict[str, Any]
    value_positions: Mapping[JsonPath, Position] = field(repr=False)
    key_positions: Mapping[JsonPath, Position] = field(repr=False)

    @functools.cached_property
    def line_starts(self) -> list[int]:
        """Offset of the first character of each line, for turning positions into offsets."""
        starts = [0]
        starts.extend(i + 1 for i, ch in enumerate(self.text) if ch == "\n")
        return starts

    def offset(self, line: int, col: int) -> int:
        return self.line_starts[line - 1] + col - 1

    def span(self, path: JsonPath, *, key: bool = False) -> Span:
        """The position of the value at ``path`` (or of its key), else of its nearest parent."""
        if key and path in self.key_positions:
            line, col = self.key_positions[path]
            return Span(self.file, line, col)
        probe = path
        while True:
            if probe in self.value_positions:
                line, col = self.value_positions[probe]
                return Span(self.file, line, col)
            if not probe:
                return Span(self.file, 1, 1)
            if probe in self.key_positions:
                line, col = self.key_positions[probe]
                return Span(self.file, line, col)
            probe = probe[:-1]


def load_file(path: str | Path, display: str | None = None) -> Document:
    """Read and load one YAML file; raises :class:`PlaybookError` with positioned diagnostics."""
    name = display if display is not None else str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise _fail(name, 1, 1, "io", f"cannot read file: {exc.strerror or exc}") from None
    return load_bytes(raw, name)


def load_bytes(raw: bytes, file: str) -> Document:
    if len(raw) > MAX_FILE_BYTES:
        raise _fail(file, 1, 1, "file-too-large",
                    f"file is {len(raw)} bytes; the limit is {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, col = _byte_position(raw, exc.start)
        message = f"invalid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        raise _fail(file, line, col, "encoding", message) from None
    return load_text(text, file)


def load_text(text: str, file: str) -> Document:
    if "\x00" in text:
        line, col = _char_position(text, text.index("\x00"))
        raise _fail(file, line, col, "encoding", "NUL character in a text file")
    _check_nesting(text, file)
    root = _parse(text, file)
    if root is None:
        raise _fail(file, 1, 1, "empty-file",
                    "the file is empty; expected a mapping with 'apiVersion' and 'kind'")
    if not isinstance(root, MappingNode):
        kind = "a list" if isinstance(root, SequenceNode) else "a single value"
        raise _fail(file, root.start_mark.line + 1, root.start_mark.column + 1,
                    "root-not-mapping", f"expected a mapping at the top level, got {kind}")
    builder = _PlainBuilder(file)
    data = builder.convert(root, (), 0)
    if builder.diagnostics:
        raise PlaybookError(builder.diagnostics)
    assert isinstance(data, dict)
    return Document(file, text, data, builder.values, builder.keys)


_COMPACT = re.compile(r"[ ]*(?:[-?][ ]+)+")


def _check_nesting(text: str, file: str) -> None:
    """Refuse nesting deeper than :data:`SCAN_DEPTH` before the parser sees it: ruamel's C
    parser recurses once per level and a few thousand brackets overflow the C stack (a
    crash, not an exception). Counts flow brackets outside comments and compact ``- - -``
    sequences; quoted brackets are rare enough that counting them costs nothing real."""
    if text.count("[") + text.count("{") + text.count("- ") <= SCAN_DEPTH:
        return
    depth = 0
    for number, line in enumerate(text.split("\n"), start=1):
        compact = _COMPACT.match(line)
        if compact is not None and compact.group(0).count("-") + \
                compact.group(0).count("?") > SCAN_DEPTH:
            raise _fail(file, number, 1, "too-deep",
                        f"nested more than {SCAN_DEPTH} levels deep")
        if "[" not in line and "{" not in line and depth == 0:
            continue
        for column, char in enumerate(line, start=1):
            if char == "#" and (column == 1 or line[column - 2] in " \t"):
                break
            if char in "[{":
                depth += 1
                if depth > SCAN_DEPTH:
                    raise _fail(file, number, column, "too-deep",
                                f"nested more than {SCAN_DEPTH} levels deep")
            elif char in "]}":
                depth = max(depth - 1, 0)


def _parse(text: str, file: str) -> Node | None:
    """Compose the node tree (no construction: positions stay, tags stay unapplied).

    The safe composer uses ruamel's C parser when ruamel.yaml.clib is installed, which is 4x
    faster than the round-trip loader; only ``fmt`` needs comments and uses that one.
    """
    yaml = YAML(typ="safe")
    try:
        node: Node | None = yaml.compose(text)
        return node
    except MarkedYAMLError as exc:
        raise PlaybookError([_yaml_diagnostic(exc, text, file)]) from None
    except RecursionError:
        raise _fail(file, 1, 1, "too-deep", "the document is nested too deeply") from None
    except YAMLError as exc:
        raise _fail(file, 1, 1, "yaml-syntax", f"invalid YAML: {exc}") from None
    except Exception as exc:  # the parsers raise assorted builtins on odd input
        raise _fail(file, 1, 1, "yaml-syntax", f"invalid YAML: {exc}") from None


def _yaml_diagnostic(exc: MarkedYAMLError, text: str, file: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    offset = mark.index if mark is not None else -1
    here = text[offset] if 0 <= offset < len(text) else ""
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    if here == "\t" or "'\\t'" in problem:
        return Diagnostic(file, line, col, "tab",
                          "tab character where YAML allows only spaces; indent with spaces")
    if problem.startswith("found undefined alias") and here == "*":
        name = re.match(r"\*([^\s,\[\]{}]*)", text[offset:])
        problem = f"found undefined alias '{name.group(1) if name else ''}'"
    message = f"invalid YAML: {problem}"
    if exc.context and exc.context_mark is not None and exc.problem:
        cm = exc.context_mark
        message += f" ({exc.context.strip()} at {cm.line + 1}:{cm.column + 1})"
    return Diagnostic(file, line, col, "yaml-syntax", message)


_TAG = "tag:yaml.org,2002:"
_INFINITY = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"}


def _position_of(node: Node) -> Position:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _PlainBuilder:
    """Converts composed nodes into dict/list/scalars, recording positions and counting nodes.

    Aliases are the same node object in several places; each use counts, so a "billion
    laughs" document stops at :data:`MAX_NODES` instead of expanding.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.values: dict[JsonPath, Position] = {}
        self.keys: dict[JsonPath, Position] = {}
        self.diagnostics: list[Diagnostic] = []
        self.nodes = 0

    def error(self, node: Node, code: str, message: str) -> None:
        line, col = _position_of(node)
        self.diagnostics.append(Diagnostic(self.file, line, col, code, message))

    def convert(self, node: Node, path: JsonPath, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            line, col = _position_of(node)
            raise _fail(self.file, line, col, "alias-limit",
                        f"the document expands to more than {MAX_NODES} nodes through "
                        "anchors and aliases; use fewer aliases")
        if depth > MAX_DEPTH:
            line, col = _position_of(node)
            raise _fail(self.file, line, col, "too-deep", f"nested deeper than {MAX_DEPTH} levels")
        self.values.setdefault(path, _position_of(node))
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, SequenceNode):
            return [self.convert(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: MappingNode, path: JsonPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Position] = {}
        merged: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == f"{_TAG}merge":
                merged.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != f"{_TAG}str":
                self.error(key_node, "key-type", "mapping keys must be strings, got "
                           f"{_describe_node(key_node)}; quote the key")
                continue
            key = self._text(key_node)
            if key in first_seen:
                self.error(key_node, "duplicate-key",
                           f"duplicate key '{key}' (first at line {first_seen[key][0]})")
                continue
            first_seen[key] = _position_of(key_node)
            child = (*path, key)
            self.keys[child] = first_seen[key]
            result[key] = self.convert(value_node, child, depth + 1)
        for source in merged:  # YAML merge keys: explicit keys win over merged ones
            sources = source.value if isinstance(source, SequenceNode) else [source]
            for item in sources:
                value = self.convert(item, path, depth + 1)
                if not isinstance(value, dict):
                    self.error(item, "yaml-syntax", "'<<' merges only mappings")
                    continue
                for key, merged_value in value.items():
                    result.setdefault(key, merged_value)
        return result

    def _text(self, node: ScalarNode) -> str:
        """The scalar's text; a lone surrogate (from a ``\\u`` escape) is refused."""
        text: str = node.value
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            self.error(node, "encoding", "a \\u escape makes a lone surrogate; write the "
                       "character itself or use \\U with its full code point")
            return ""
        return text

    def _scalar(self, node: Node) -> Any:
        tag = node.tag
        text = self._text(node) if isinstance(node, ScalarNode) else ""
        if tag in (f"{_TAG}str", f"{_TAG}timestamp"):
            return text  # a date stays the text the operator wrote
        if tag == f"{_TAG}null":
            return None
        if tag == f"{_TAG}bool":
            return text.lower() == "true"
        if tag == f"{_TAG}int":
            return _to_int(text)
        if tag == f"{_TAG}float":
            return _to_float(text)
        self.error(node, "yaml-tag", f"unsupported YAML value {_describe_node(node)}; use plain "
                   "strings, numbers, booleans, lists and mappings")
        return None


def _to_int(text: str) -> int | str:
    digits = text.replace("_", "")
    sign = -1 if digits.startswith("-") else 1
    digits = digits.lstrip("+-")
    bases = {"0x": 16, "0o": 8, "0b": 2}
    try:
        base = bases.get(digits[:2].lower(), 10)
        return sign * int(digits[2:] if base != 10 else digits, base)
    except ValueError:
        return text


def _to_float(text: str) -> float | str:
    if text in _INFINITY:
        return float("inf")
    if text in {"-.inf", "-.Inf", "-.INF"}:
        return float("-inf")
    if text.lower() == ".nan":
        return float("nan")
    try:
        return float(text.replace("_", ""))
    except ValueError:
        return text


def _describe_node(node: Node) -> str:
    tag = str(node.tag)
    if tag.startswith(_TAG):
        short = tag[len(_TAG):]
        return {"map": "a mapping", "seq": "a list", "null": "null", "bool": "a boolean",
                "int": "a number", "float": "a number"}.get(short, short)
    return f"tagged {tag}"


def _fail(file: str, line: int, col: int, code: str, message: str) -> PlaybookError:
    return PlaybookError([Diagnostic(file, line, col, code, message)])


def _byte_position(raw: bytes, offset: int) -> Position:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    line = raw.count(b"\n", 0, offset) + 1
    col = len(raw[line_start:offset].decode("utf-8", errors="replace")) + 1
    return (line, col)


def _char_position(text: str, offset: int) -> Position:
    line_start = text.rfind("\n", 0, offset) + 1
    return (text.count("\n", 0, offset) + 1, offset - line_start + 1)
