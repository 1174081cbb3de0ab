"""Rendering IR values against the contexts of a run: ``${{ }}`` alone keeps the value's type,
text around expressions makes a string with GitHub's coercion (null -> '', numbers as
JavaScript prints them, containers as 'Array'/'Object').
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from . import ir
from . import values as v
from .expressions import evaluate, evaluate_value

Functions = Mapping[str, Callable[[], Any]] | None


def render(value: ir.Value, contexts: Mapping[str, Any], functions: Functions = None) -> Any:
    """The plain JSON-like value of ``value``; raises :class:`ExpressionError`."""
    if isinstance(value, ir.Const):
        return ir.thaw(value.value)
    if isinstance(value, ir.Expr):
        return evaluate(value.source, contexts, functions)
    if isinstance(value, ir.Interp):
        return "".join(
            part if isinstance(part, str)
            else v.to_string(evaluate_value(part.source, contexts, functions))
            for part in value.parts
        )
    if isinstance(value, ir.ListOf):
        return [render(item, contexts, functions) for item in value.items]
    return {key: render(item, contexts, functions) for key, item in value.items}


def render_template(text: str, contexts: Mapping[str, Any], functions: Functions = None) -> Any:
    """Render one string as a playbook scalar would be (``aiosrun eval`` uses it)."""
    from .templates import Segment, is_single_expression, split_template

    parts = split_template(text)
    if is_single_expression(parts):
        segment = next(p for p in parts if isinstance(p, Segment))
        return evaluate(segment.source.strip(), contexts, functions)
    return "".join(p if isinstance(p, str)
                   else v.to_string(evaluate_value(p.source.strip(), contexts, functions))
                   for p in parts)
