"""The project's error tree; every layer raises these, never foreign exceptions.

    AiosrunError
    ├── PlaybookError      found before running: syntax, schema, semantics, compile
    │                      (carries a list of Diagnostics, each with its span)
    ├── ExpressionError    a ${{ }} expression failed to lex, parse or evaluate
    │                      (kind, position in the expression text)
    └── RunError           failures while a run executes (step id, span)

The root lives in ``dsl`` because ``dsl`` depends on no other layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .diagnostics import Diagnostic


class AiosrunError(Exception):
    """Root of every error the project raises on purpose."""


class PlaybookError(AiosrunError):
    """One or more problems found in a playbook or workspace file before it runs."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


class RunError(AiosrunError):
    """A failure while a run executes, tied to the step where it happened."""

    def __init__(self, message: str, *, step: str | None = None) -> None:
        self.step = step
        super().__init__(message)
