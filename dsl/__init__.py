"""The playbook language: loading with positions, schema, semantic checks, compilation to IR.

``dsl`` imports nothing from the other layers.
"""

from .diagnostics import Diagnostic, Span
from .errors import AiosrunError, PlaybookError, RunError
from .loader import Document, load_file, load_text
from .validate import ValidationResult, validate_document, validate_files

__all__ = [
    "AiosrunError",
    "Diagnostic",
    "Document",
    "PlaybookError",
    "RunError",
    "Span",
    "ValidationResult",
    "load_file",
    "load_text",
    "validate_document",
    "validate_files",
]
