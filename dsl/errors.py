"""The project's error tree; every layer raises these, never foreign exceptions.

    AiosrunError
    ├── PlaybookError      found before running: syntax, schema, semantics, compile
    │                      (carries a list of Diagnostics, each with its span)
    ├── ExpressionError    a ${{ }} expression failed (kind, position in the expression)
    │   ├── ExpressionLexingError      a symbol that is no token
    │   ├── ExpressionParsingError     bad syntax, unknown name or function, arity, depth
    │   └── ExpressionEvaluationError  bad format string, memory limit, invalid JSON
    └── RunError           failures while a run executes (step id, span)

The root lives in ``dsl`` because ``dsl`` depends on no other layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .diagnostics import Diagnostic


class AiosrunError(Exception):
    """Root of every error the project raises on purpose."""


class PlaybookError(AiosrunError):
    """One or more problems found in a playbook or workspace file before it runs."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


class ExpressionError(AiosrunError):
    """An expression that cannot be lexed, parsed or evaluated.

    ``message`` is GitHub Actions' own wording (the conformance data checks it); ``detail`` adds
    what an operator needs beyond it; ``position`` is the 0-based offset in ``expression``;
    ``code`` names the problem for tools.
    """

    kind: ClassVar[str] = "expression"

    def __init__(self, message: str, expression: str, position: int, *, code: str,
                 symbol: str | None = None, detail: str | None = None) -> None:
        self.message = message
        self.expression = expression
        self.position = position
        self.code = code
        self.symbol = symbol
        self.detail = detail
        super().__init__(f"{message} ({detail})" if detail else message)


class ExpressionLexingError(ExpressionError):
    kind = "lexing"


class ExpressionParsingError(ExpressionError):
    kind = "parsing"


class ExpressionEvaluationError(ExpressionError):
    kind = "evaluation"


class RunError(AiosrunError):
    """A failure while a run executes, tied to the step where it happened."""

    def __init__(self, message: str, *, step: str | None = None) -> None:
        self.step = step
        super().__init__(message)
