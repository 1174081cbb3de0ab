"""Property tests of the expression language: nothing but ExpressionError ever escapes, every
evaluation ends quickly, and the algebra GitHub promises holds."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from aiosrun.dsl import ExpressionError, evaluate
from aiosrun.dsl.values import js_number_to_string, js_string_to_number
from hypothesis import given
from hypothesis import strategies as st

CONTEXTS: dict[str, Any] = {
    "a": {"b": [1, "two", None, {"c": True}], "n": 2.5, "s": "Text"},
    "list": [[1, 2], {"k": "v"}, "x"],
    "empty": {},
}

symbols = st.sampled_from(
    ["a", "b", "list", "empty", "c", "n", "s", ".", "*", "[", "]", "(", ")", ",", "!", "==",
     "!=", "<", "<=", ">", ">=", "&&", "||", "'x'", "''", "1", "-2.5", "0x1F", "NaN",
     "Infinity", "null", "true", "false", "contains", "startsWith", "endsWith", "format",
     "join", "toJSON", "fromJSON", "case", "'{0}'", " ", "@", "&", "|", "=", "'"]
)


def only_expression_errors(text: str) -> None:
    started = time.perf_counter()
    try:
        evaluate(text, CONTEXTS)
    except ExpressionError as exc:
        assert exc.kind in {"lexing", "parsing", "evaluation"}
        assert 0 <= exc.position <= len(text)
    assert time.perf_counter() - started < 1


@given(st.text(max_size=80))
def test_random_text_raises_only_expression_errors(text: str) -> None:
    only_expression_errors(text)


@given(st.lists(symbols, max_size=40).map(" ".join))
def test_random_token_soup(text: str) -> None:
    only_expression_errors(text)


leaf = st.sampled_from(["a.b", "a.n", "a.s", "list", "list.*.k", "a.b[1]", "empty",
                        "null", "true", "1", "0", "'x'", "'1'", "NaN", "a.b.*"])


def combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "&&", "||"]),
                  inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        inner.map(lambda x: f"!({x})"),
        inner.map(lambda x: f"({x})"),
        st.tuples(st.sampled_from(["contains", "startsWith", "endsWith", "join"]), inner,
                  inner).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        inner.map(lambda x: f"toJSON({x})"),
        inner.map(lambda x: f"format('{{0}}-{{0}}', {x})"),
    )


expressions = st.recursive(leaf, combine, max_leaves=25)


@given(expressions)
def test_random_well_formed_expressions_evaluate(text: str) -> None:
    started = time.perf_counter()
    try:
        result = evaluate(text, CONTEXTS)
        json.dumps(result, allow_nan=True)  # always plain data
    except ExpressionError as exc:
        assert exc.code in {"too-deep", "memory"}, exc
    assert time.perf_counter() - started < 1


@given(expressions, expressions)
def test_loose_equality_is_symmetric(left: str, right: str) -> None:
    try:
        forward = evaluate(f"({left}) == ({right})", CONTEXTS)
        backward = evaluate(f"({right}) == ({left})", CONTEXTS)
    except ExpressionError:
        return
    assert forward == backward


@given(expressions)
def test_not_is_the_opposite_of_truthiness(text: str) -> None:
    with contextlib.suppress(ExpressionError):
        assert evaluate(f"!({text})", CONTEXTS) is not evaluate(f"!!({text})", CONTEXTS)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_number_text_round_trips(number: float) -> None:
    assert js_string_to_number(js_number_to_string(number)) == number


json_data = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), inner, max_size=4),
    max_leaves=15,
)


@given(json_data)
def test_to_json_from_json_round_trip(value: Any) -> None:
    assert evaluate("fromJSON(toJSON(v))", {"v": value}) == value
