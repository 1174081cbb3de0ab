"""Finding ``${{ }}`` expressions inside YAML scalars, and where they stand in the file.

A scalar that is exactly one ``${{ }}`` keeps the value's type; text around one or more
expressions makes a string. The closing ``}}`` is the first one outside a single-quoted
string literal, as in GitHub Actions, so ``${{ format('}}') }}`` works.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from .diagnostics import Span
from .loader import Document, JsonPath

OPEN = "${{"
CLOSE = "}}"


@dataclass(frozen=True)
class Segment:
    """One ``${{ expr }}`` in a scalar: its inner text and the offset of that text."""

    source: str
    offset: int
    index: int


class TemplateSyntaxError(ValueError):
    def __init__(self, message: str, offset: int, index: int) -> None:
        super().__init__(message)
        self.offset = offset
        self.index = index


def split_template(text: str) -> list[str | Segment]:
    """Literal text and expression segments, in order; raises on an unclosed ``${{``."""
    parts: list[str | Segment] = []
    pos = 0
    index = 0
    while True:
        start = text.find(OPEN, pos)
        if start < 0:
            if pos < len(text):
                parts.append(text[pos:])
            return parts
        if start > pos:
            parts.append(text[pos:start])
        inner = start + len(OPEN)
        end = _find_close(text, inner)
        if end < 0:
            raise TemplateSyntaxError("'${{' is not closed by '}}'", start, index)
        parts.append(Segment(text[inner:end], inner, index))
        index += 1
        pos = end + len(CLOSE)


def has_expression(value: object) -> bool:
    return isinstance(value, str) and OPEN in value


def is_single_expression(parts: list[str | Segment]) -> bool:
    """True when the scalar is exactly one ``${{ }}`` (surrounding blanks allowed)."""
    segments = [p for p in parts if isinstance(p, Segment)]
    return len(segments) == 1 and all(isinstance(p, Segment) or not p.strip() for p in parts)


def _find_close(text: str, pos: int) -> int:
    in_string = False
    i = pos
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "'":
                if text.startswith("''", i):
                    i += 2
                    continue
                in_string = False
        elif ch == "'":
            in_string = True
        elif text.startswith(CLOSE, i):
            return i
        i += 1
    return -1


def locate(doc: Document, path: JsonPath, index: int, offset_in_expr: int) -> Span:
    """The file position of character ``offset_in_expr`` of the ``index``-th ``${{ }}`` in a
    scalar.

    YAML quoting and block styles move text around, but ``${{`` itself is never rewritten, so
    the n-th ``${{`` after the scalar's start in the source is this expression's opening.
    """
    start = doc.span(path)
    found = doc.offset(start.line, start.col) - 1
    for _ in range(index + 1):
        found = doc.text.find(OPEN, found + 1)
        if found < 0:
            return start
    target = found + len(OPEN) + offset_in_expr
    line = bisect.bisect_right(doc.line_starts, target)
    return Span(doc.file, line, target - doc.line_starts[line - 1] + 1)
