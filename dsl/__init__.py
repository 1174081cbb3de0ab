"""The playbook language: loading with positions, schema, semantic checks, compilation to IR.

``dsl`` imports nothing from the other layers. Its public names load on first use, so that
importing one submodule (``aiosrun.dsl.errors``, say) does not pull in jsonschema and lark.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .diagnostics import Diagnostic, Span
    from .errors import (
        AiosrunError,
        ExpressionError,
        ExpressionEvaluationError,
        ExpressionLexingError,
        ExpressionParsingError,
        PlaybookError,
        RunError,
    )
    from .expressions import evaluate
    from .loader import Document, load_file, load_text
    from .validate import ValidationResult, validate_document, validate_files

_EXPORTS = {
    "AiosrunError": "errors",
    "Diagnostic": "diagnostics",
    "Document": "loader",
    "ExpressionError": "errors",
    "ExpressionEvaluationError": "errors",
    "ExpressionLexingError": "errors",
    "ExpressionParsingError": "errors",
    "PlaybookError": "errors",
    "RunError": "errors",
    "Span": "diagnostics",
    "ValidationResult": "validate",
    "evaluate": "expressions",
    "load_file": "loader",
    "load_text": "loader",
    "validate_document": "validate",
    "validate_files": "validate",
}
__all__ = [
    "AiosrunError",
    "Diagnostic",
    "Document",
    "ExpressionError",
    "ExpressionEvaluationError",
    "ExpressionLexingError",
    "ExpressionParsingError",
    "PlaybookError",
    "RunError",
    "Span",
    "ValidationResult",
    "evaluate",
    "load_file",
    "load_text",
    "validate_document",
    "validate_files",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aiosrun.dsl' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
