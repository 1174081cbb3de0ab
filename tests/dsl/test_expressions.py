"""The expression API beyond the conformance data: types, positions, caching, safety,
interpolation, and JavaScript number formatting."""

from __future__ import annotations

import math

import pytest
from aiosrun.dsl import (
    ExpressionError,
    ExpressionEvaluationError,
    ExpressionLexingError,
    ExpressionParsingError,
    evaluate,
    ir,
)
from aiosrun.dsl.diagnostics import Span
from aiosrun.dsl.expressions import parse
from aiosrun.dsl.render import render
from aiosrun.dsl.values import js_number_to_string, number_to_string

CONTEXTS = {
    "inputs": {"customer": {"Email": "ada@example.com", "plan": "pro"}, "count": 3},
    "steps": {"score": {"outputs": {"value": 0.9, "tags": ["a", "b"]}}},
}


def test_results_are_plain_python() -> None:
    assert evaluate("inputs.count", CONTEXTS) == 3
    assert isinstance(evaluate("inputs.count", CONTEXTS), int)
    assert evaluate("steps.score.outputs.value", CONTEXTS) == 0.9
    assert evaluate("steps.score.outputs", CONTEXTS) == {"value": 0.9, "tags": ["a", "b"]}
    assert evaluate("inputs.customer.email", CONTEXTS) == "ada@example.com"  # any case
    assert evaluate("INPUTS.Customer.PLAN == 'PRO'", CONTEXTS) is True
    assert evaluate("steps.*.outputs.value", CONTEXTS) == [0.9]
    assert evaluate("inputs.missing.deeper", CONTEXTS) is None
    assert evaluate("inputs.count > 2 && 'many' || 'few'", CONTEXTS) == "many"


@pytest.mark.parametrize(
    ("text", "error", "position"),
    [
        ("1 @x", ExpressionLexingError, 2),
        ("'open", ExpressionLexingError, 0),
        ("inputs.count ==", ExpressionParsingError, 13),
        ("inputs.count 2", ExpressionParsingError, 13),
        ("nosuch.x", ExpressionParsingError, 0),
        ("inputs.count && nosuchfn()", ExpressionParsingError, 16),
        ("format('{9}', 1)", ExpressionEvaluationError, 0),
        ("fromJSON('{')", ExpressionEvaluationError, 0),
    ],
)
def test_errors_have_kind_and_position(text: str, error: type[ExpressionError],
                                       position: int) -> None:
    with pytest.raises(error) as info:
        evaluate(text, CONTEXTS)
    assert info.value.position == position
    assert info.value.kind in {"lexing", "parsing", "evaluation"}
    assert info.value.expression == text


def test_parsed_expressions_are_cached() -> None:
    names = frozenset({"inputs"})
    assert parse("inputs.a == 1", names) is parse("inputs.a == 1", names)


def test_status_functions_only_when_given() -> None:
    with pytest.raises(ExpressionParsingError):
        evaluate("success()", {})
    assert evaluate("success() && !failure()", {},
                    {"success": lambda: True, "failure": lambda: False}) is True


class Sneaky:
    secret = "python attribute"

    def __getitem__(self, key: str) -> str:
        return "item access"


def test_no_attribute_access_on_python_objects() -> None:
    assert evaluate("a.__class__", {"a": {}}) is None
    assert evaluate("a['__dict__']", {"a": {"x": 1}}) is None
    with pytest.raises(ExpressionEvaluationError):
        evaluate("a.secret", {"a": Sneaky()})


def test_depth_and_length_limits() -> None:
    with pytest.raises(ExpressionParsingError) as info:
        evaluate("(" * 60 + "1" + ")" * 60, {})
    assert info.value.code == "too-deep"
    with pytest.raises(ExpressionLexingError):
        evaluate("1" + " " * 21_001, {})
    assert evaluate("(" * 49 + "1" + ")" * 49, {}) == 1


def test_memory_limit_stops_runaway_format() -> None:
    text = "format('{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}', format('{0}{0}{0}{0}{0}{0}{0}{0}', s))"
    with pytest.raises(ExpressionEvaluationError) as info:
        evaluate(text, {"s": "x" * 10_000})
    assert info.value.code == "memory"


def test_render_keeps_type_or_interpolates() -> None:
    span = Span("p.yaml", 1, 1)
    assert render(ir.Expr("inputs.count", span), CONTEXTS) == 3
    text = ir.Interp(("n=", ir.Expr("inputs.count", span), " t=",
                      ir.Expr("steps.score.outputs.tags", span), " z=",
                      ir.Expr("inputs.none", span), " f=", ir.Expr("1.50", span)))
    assert render(text, CONTEXTS) == "n=3 t=Array z= f=1.5"
    mapping = ir.MapOf((("a", ir.ListOf((ir.Const(1), ir.Expr("inputs.count", span)))),))
    assert render(mapping, CONTEXTS) == {"a": [1, 3]}


@pytest.mark.parametrize(
    ("number", "text"),
    [  # what JavaScript's String(x) prints, from the ECMAScript rules
        (1e21, "1e+21"), (1e20, "100000000000000000000"), (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"), (-2.5, "-2.5"), (123e-20, "1.23e-18"), (5e-324, "5e-324"),
        (math.inf, "Infinity"), (-math.inf, "-Infinity"), (math.nan, "NaN"), (-0.0, "0"),
    ],
)
def test_js_number_to_string(number: float, text: str) -> None:
    assert js_number_to_string(number) == text


def test_numbers_print_with_at_most_15_decimals() -> None:
    assert number_to_string(0.1 + 0.2) == "0.3"
    assert number_to_string(1 / 3) == "0.333333333333333"
    assert number_to_string(2**0.5 * 1e10) == "14142135623.730951"


def test_object_keys_follow_javascript() -> None:
    """Of keys equal but for case the first wins; array-index-like keys come first, ascending,
    as in a JavaScript object."""
    assert evaluate("a.foo", {"a": {"Foo": 1, "foo": 2}}) == 1
    assert evaluate("a", {"a": {"Foo": 1, "foo": 2}}) == {"Foo": 1}
    assert list(evaluate("fromJSON('{\"b\": 1, \"10\": 2, \"2\": 3, \"x\": 4}')", {})) == [
        "2", "10", "b", "x"]
    assert evaluate("toJSON(a.*)", {"a": {"b": 1, "1": 2}}) == "[\n  2,\n  1\n]"
