"""Positioned diagnostics: what every check in ``dsl`` produces and the CLI prints.

A diagnostic renders like a compiler message, ``FILE:LINE:COL: error: MESSAGE [code]``,
so editors and CI logs can jump to it. Lines and columns are 1-based.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Span:
    """Where something is in a source file (1-based line and column)."""

    file: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None


@dataclass(frozen=True, order=True)
class Diagnostic:
    file: str
    line: int
    col: int
    code: str
    message: str
    severity: Severity = "error"

    @classmethod
    def at(cls, span: Span, code: str, message: str) -> Diagnostic:
        return cls(span.file, span.line, span.col, code, message)

    def format(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message} [{self.code}]"

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.col,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by file, line, column; exact duplicates dropped."""
    return sorted(set(diagnostics))


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A ``; did you mean 'x'?`` suffix, or nothing when no candidate is close."""
    lowered = {c.lower(): c for c in candidates}
    matches = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean '{lowered[matches[0]]}'?" if matches else ""


def quote_list(words: Iterable[str]) -> str:
    return ", ".join(f"'{w}'" for w in words)


def schema_message(error: Any) -> str:
    """jsonschema's message with the offending value spelled as JSON (``null``, ``true``),
    not as Python (``None``, ``True``); strings keep their quotes."""
    message = str(error.message)
    instance = error.instance
    shown = repr(instance)
    if isinstance(instance, str) or not message.startswith(shown):
        return message
    try:
        spelled = json.dumps(instance, ensure_ascii=False)
    except (TypeError, ValueError):
        return message
    return spelled + message[len(shown):]
