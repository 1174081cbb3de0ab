"""The evaluator that runs (``compile_fast``, through :func:`evaluate`) against the plain
tree of closures (``compile_reference``) on random expressions and random contexts: the same
value, or the same error with the same message and position. The contexts mix key cases
(``a``/``A``), integer-like keys, numbers that are ints, tuples and data that is not JSON, the
cases where the fast paths hand over to the reference."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from aiosrun.dsl import values as v
from aiosrun.dsl.errors import ExpressionError, ExpressionEvaluationError
from aiosrun.dsl.evaluator import compile_reference
from aiosrun.dsl.expression_nodes import Scope
from aiosrun.dsl.expressions import evaluate, parse
from hypothesis import given, settings
from hypothesis import strategies as st

KEYS = ["a", "A", "b", "ab", "aB", "1", "0", "10", "x", "\u0131", "I"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 12), st.sampled_from([0.5, -0.0, 1e21, 2.0]),
    st.sampled_from([float("nan"), float("inf")]),
    st.sampled_from(["", "a", "A", "1", " 2 ", "0x1F", "\u0131", "I", "true", "null", "{0}"]),
)
data = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    ),
    max_leaves=12,
)
odd = st.sampled_from([{1: "int key"}, {"a": {2, 3}}, {"a": b"bytes"}])
contexts = st.dictionaries(st.sampled_from(["c", "d", "C", "D"]),
                           data, min_size=1, max_size=3)
contexts_with_odd = st.one_of(contexts, st.fixed_dictionaries({"c": odd, "d": data}))

accessor = st.sampled_from([".a", ".A", ".b", ".ab", ".AB", ".x", ".\u0131", ".I", ".*", "[0]",
                            "[1]", "['a']", "['A']", "['1']", "[c.a]", "[true]"])
path = st.tuples(st.sampled_from(["c", "d", "C"]), st.lists(accessor, max_size=4)).map(
    lambda t: t[0] + "".join(t[1]))
literal = st.sampled_from(["null", "true", "false", "0", "1", "-2.5", "0x1F", "NaN",
                           "Infinity", "'a'", "'A'", "''", "'1'", "'\u0131'", "'I'"])
leaf = st.one_of(path, literal)


def combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "&&", "||"]),
                  inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} == {t[1]} != {t[2]}"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} && {t[1]} || {t[2]}"),
        inner.map(lambda x: f"!({x})"),
        inner.map(lambda x: f"({x})"),
        st.tuples(inner, st.sampled_from([".a", ".A", ".*", "[0]"])).map(
            lambda t: f"({t[0]}){t[1]}"),
        st.tuples(st.sampled_from(["contains", "startsWith", "endsWith", "join"]), inner,
                  inner).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        inner.map(lambda x: f"toJSON({x})"),
        inner.map(lambda x: f"fromJSON({x})"),
        inner.map(lambda x: f"format('{{0}}', {x})"),
        st.tuples(inner, inner).map(lambda t: f"case({t[0]}, {t[1]}, 'no')"),
        st.sampled_from(["success()", "failure() || always()", "!cancelled()"]),
    )


expressions = st.recursive(leaf, combine, max_leaves=12)
Outcome = tuple[Any, ...]
STATUS: dict[str, Callable[[], Any]] = {"success": lambda: True, "failure": lambda: False,
                                        "always": lambda: True, "cancelled": lambda: False}


def _error(exc: ExpressionError) -> Outcome:
    return ("error", type(exc).__name__, str(exc), exc.position, exc.code)


def _value(value: Any) -> Outcome:
    return ("value", json.dumps(value, allow_nan=True))


def fast(text: str, given: Mapping[str, Any], functions: Mapping[str, Any] | None) -> Outcome:
    try:
        return _value(evaluate(text, given, functions))
    except ExpressionError as exc:
        return _error(exc)


def reference(text: str, given: Mapping[str, Any],
              functions: Mapping[str, Any] | None) -> Outcome:
    """What :func:`evaluate` does, with the reference evaluator in place of the fast one."""
    try:
        expression = parse(text, frozenset(n.lower() for n in given),
                           frozenset(functions or ()))
    except ExpressionError as exc:
        return _error(exc)
    assert expression.ast is not None
    run = compile_reference(expression.ast, text)
    provided = ({k: (lambda f=f: v.wrap(f())) for k, f in functions.items()}
                if functions else None)
    try:
        return _value(v.to_python(run(Scope(given, text, provided))))
    except ExpressionError as exc:
        return _error(exc)
    except TypeError as exc:
        return _error(ExpressionEvaluationError(f"Context data is not JSON: {exc}", text, 0,
                                                code="not-json"))


@settings(max_examples=400, deadline=None)
@given(expressions, contexts_with_odd, st.booleans())
def test_fast_evaluator_agrees_with_the_reference(text: str, given: dict[str, Any],
                                                  with_status: bool) -> None:
    functions = STATUS if with_status else None
    assert fast(text, given, functions) == reference(text, given, functions)


def test_a_key_equal_but_for_case_is_read_as_the_reference_reads_it() -> None:
    given = {"c": {"Plan": "first", "plan": "second", "x": {"A": 1}}}
    for text in ("c.plan", "c.PLAN", "c.x.a", "c.x.A", "c.plan == 'FIRST'"):
        assert fast(text, given, None) == reference(text, given, None), text
    assert evaluate("c.plan", given) == "first"
