"""YAML text -> plain JSON-like data with the source position of every key and value.

The loader is the only place that parses YAML (ruamel.yaml, YAML 1.2, so ``on:`` stays a
string). It rejects what would make later stages guess: bad encoding, tabs, duplicate keys,
non-string keys, tags, multi-documents, and alias expansion past a limit (a "billion
laughs" file fails in milliseconds). Everything downstream (schema, checks, compiler) works
on :class:`Document`, never on ruamel objects.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .diagnostics import Diagnostic, Span
from .errors import PlaybookError

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64

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
    root = _parse(text, file)
    if root is None:
        raise _fail(file, 1, 1, "empty-file",
                    "the file is empty; expected a mapping with 'apiVersion' and 'kind'")
    if not isinstance(root, CommentedMap):
        kind = "a list" if isinstance(root, CommentedSeq) else "a single value"
        raise _fail(file, 1, 1, "root-not-mapping",
                    f"expected a mapping at the top level, got {kind}")
    builder = _PlainBuilder(file)
    data = builder.convert(root, (), 0)
    if builder.diagnostics:
        raise PlaybookError(builder.diagnostics)
    builder.values[()] = (root.lc.line + 1, root.lc.col + 1)
    assert isinstance(data, dict)
    return Document(file, text, data, builder.values, builder.keys)


def _parse(text: str, file: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        raise PlaybookError([_yaml_diagnostic(exc, text, file)]) from None
    except RecursionError:
        raise _fail(file, 1, 1, "too-deep", "the document is nested too deeply") from None
    except YAMLError as exc:
        raise _fail(file, 1, 1, "yaml-syntax", f"invalid YAML: {exc}") from None
    except Exception as exc:  # ruamel raises assorted builtins on odd input; keep them positioned
        raise _fail(file, 1, 1, "yaml-syntax", f"invalid YAML: {exc}") from None


_DUPLICATE = re.compile(r'found duplicate key "(.*?)" with value')


def _yaml_diagnostic(exc: MarkedYAMLError, text: str, file: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    duplicate = _DUPLICATE.search(problem)
    if duplicate:
        first = exc.context_mark
        where = f" (the mapping starts at line {first.line + 1})" if first is not None else ""
        return Diagnostic(file, line, col, "duplicate-key",
                          f"duplicate key '{duplicate.group(1)}'{where}")
    if "'\\t'" in problem:
        return Diagnostic(file, line, col, "tab",
                          "tab character where YAML allows only spaces; indent with spaces")
    message = f"invalid YAML: {problem}"
    if exc.context and exc.context_mark is not None and exc.problem:
        cm = exc.context_mark
        message += f" ({exc.context.strip()} at {cm.line + 1}:{cm.column + 1})"
    return Diagnostic(file, line, col, "yaml-syntax", message)


class _PlainBuilder:
    """Converts ruamel nodes into dict/list/scalars, recording positions and counting nodes."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.values: dict[JsonPath, Position] = {}
        self.keys: dict[JsonPath, Position] = {}
        self.diagnostics: list[Diagnostic] = []
        self.nodes = 0

    def _stop(self, path: JsonPath, code: str, message: str) -> PlaybookError:
        line, col = self._position(path)
        return _fail(self.file, line, col, code, message)

    def _position(self, path: JsonPath) -> Position:
        probe = path
        while probe:
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return (1, 1)

    def convert(self, node: Any, path: JsonPath, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self._stop(path, "alias-limit",
                             f"the document expands to more than {MAX_NODES} nodes through "
                             "anchors and aliases; use fewer aliases")
        if depth > MAX_DEPTH:
            raise self._stop(path, "too-deep", f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, CommentedMap):
            return self._mapping(node, path, depth)
        if isinstance(node, CommentedSeq):
            items = []
            for index, item in enumerate(node):
                child = (*path, index)
                try:
                    line, col = node.lc.item(index)
                    self.values[child] = (line + 1, col + 1)
                except (KeyError, TypeError):
                    pass
                items.append(self.convert(item, child, depth + 1))
            return items
        return self._scalar(node, path)

    def _mapping(self, node: CommentedMap, path: JsonPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in node.items():
            if not isinstance(key, str):
                line, col = self._key_position(node, key, path)
                self.diagnostics.append(Diagnostic(
                    self.file, line, col, "key-type",
                    f"mapping keys must be strings, got {_describe(key)}; quote the key"))
                continue
            child = (*path, self._text(key, path))
            self.keys[child] = self._key_position(node, key, path)
            try:
                line, col = node.lc.value(key)
                self.values[child] = (line + 1, col + 1)
            except (KeyError, TypeError):
                self.values.setdefault(child, self.keys[child])
            result[str(child[-1])] = self.convert(value, child, depth + 1)
        return result

    def _key_position(self, node: CommentedMap, key: Any, path: JsonPath) -> Position:
        try:
            line, col = node.lc.key(key)
            return (line + 1, col + 1)
        except (KeyError, TypeError):
            return self._position(path)

    def _text(self, text: str, path: JsonPath) -> str:
        """Plain ``str``; a lone surrogate (from a ``\\u`` escape) is refused, not carried on."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            line, col = self._position(path)
            self.diagnostics.append(Diagnostic(
                self.file, line, col, "encoding",
                "a \\u escape makes a lone surrogate; write the character itself or use "
                "\\U with its full code point"))
            return ""
        return str(text)

    def _scalar(self, node: Any, path: JsonPath) -> Any:
        if node is None or isinstance(node, bool):
            return node
        if isinstance(node, str):
            return self._text(node, path)
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if isinstance(node, datetime.date):
            return node.isoformat()
        line, col = self._position(path)
        self.diagnostics.append(Diagnostic(
            self.file, line, col, "yaml-tag",
            f"unsupported YAML value {_describe(node)}; use plain strings, numbers, "
            "booleans, lists and mappings"))
        return None


def _describe(value: Any) -> str:
    tag = getattr(value, "tag", None)
    tag_value = getattr(tag, "value", tag)
    if isinstance(tag_value, str) and tag_value:
        return f"tagged {tag_value}"
    if value is None:
        return "null"
    return type(value).__name__.lower()


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
