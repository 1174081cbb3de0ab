"""Two evaluators of the expression AST, with one semantics.

:func:`compile_fast` is what runs. It reads the caller's plain dictionaries as they are on the
way down a property path (``steps.score.outputs.confidence``) instead of wrapping each level in
a case-insensitive :class:`values.Obj`, and it has fast paths for the comparisons and
operators of common conditions; whenever a fast path's condition does not hold, it does what
the reference does. :func:`compile_reference` is one closure per node over the model values of
:mod:`values`: the semantics with nothing in the way, and the oracle the property tests hold
:func:`compile_fast` to.
"""

from __future__ import annotations

from collections.abc import Callable

from . import functions as fn
from . import values as v
from .errors import ExpressionEvaluationError
from .expression_nodes import (
    Access,
    Call,
    Chain,
    Context,
    Evaluator,
    Index,
    Literal,
    Logical,
    Node,
    Not,
    Prop,
    Scope,
    Star,
)
from .functions import Key as _Key

# ---- the reference --------------------------------------------------------------------------

def compile_reference(node: Node, text: str) -> Evaluator:
    if isinstance(node, Literal):
        value = node.value
        return lambda scope: value
    if isinstance(node, Context):
        name = node.name
        return lambda scope: v.wrap(scope.contexts.get(name))
    if isinstance(node, Not):
        operand = compile_reference(node.operand, text)
        return lambda scope: not v.truthy(operand(scope))
    if isinstance(node, Logical):
        return _ref_logical(node, text)
    if isinstance(node, Chain):
        return _ref_chain(node, text)
    if isinstance(node, Access):
        return _ref_access(node, text)
    return _ref_call(node, text)


def _ref_logical(node: Logical, text: str) -> Evaluator:
    operands = [compile_reference(n, text) for n in node.operands]
    stop_when = node.op == "||"

    def run(scope: Scope) -> v.Value:
        result: v.Value = None
        for operand in operands:
            result = operand(scope)
            if v.truthy(result) is stop_when:
                break
        return result

    return run


_COMPARE: dict[str, Callable[[v.Value, v.Value], bool]] = {
    "==": v.equals,
    "!=": lambda a, b: not v.equals(a, b),
    "<": v.less,
    ">": v.greater,
    "<=": lambda a, b: v.equals(a, b) or v.less(a, b),
    ">=": lambda a, b: v.equals(a, b) or v.greater(a, b),
}


def _ref_chain(node: Chain, text: str) -> Evaluator:
    first = compile_reference(node.first, text)
    return _chained(first, [(_COMPARE[op], compile_reference(n, text)) for op, n in node.rest])


def _chained(first: Evaluator, rest: list[tuple[Callable[[v.Value, v.Value], bool],
                                                Evaluator]]) -> Evaluator:
    """``a < b < c`` as GitHub reads it: each comparison's result is the next one's left."""

    def run(scope: Scope) -> v.Value:
        left = first(scope)
        for compare, operand in rest:
            left = compare(left, operand(scope))
        return left

    return run


def _ref_access(node: Access, text: str) -> Evaluator:
    base = compile_reference(node.base, text)
    steps = [_accessor(accessor, text, compile_reference) for accessor in node.accessors]

    def run(scope: Scope) -> v.Value:
        value = base(scope)
        for step in steps:
            value = step(value, scope)
        return value

    return run


_Step = Callable[[v.Value, Scope], v.Value]


def _accessor(accessor: Prop | Index | Star, text: str,
              compile_index: Callable[[Node, str], Evaluator]) -> _Step:
    """One step of an access chain; an index expression is compiled by either evaluator's
    compiler (``compile_index``)."""
    if isinstance(accessor, Star):
        return lambda value, scope: fn.access(value, None, scope)
    if isinstance(accessor, Prop):
        key = _Key.of(accessor.name)
        name = accessor.name

        def prop(value: v.Value, scope: Scope) -> v.Value:
            if type(value) is v.Obj:  # the common case, without building a _Key
                return value.get(name)
            return fn.access(value, key, scope)

        return prop
    index = compile_index(accessor.expr, text)
    return lambda value, scope: fn.access(value, _Key.of(index(scope)), scope)


def _ref_call(node: Call, text: str) -> Evaluator:
    return _call(node, text, [compile_reference(a, text) for a in node.args])


def _call(node: Call, text: str, args: list[Evaluator]) -> Evaluator:
    """A call of a function, its arguments evaluated by ``args`` (either evaluator's)."""
    name = node.name
    if name in fn.STATUS:
        def status(scope: Scope) -> v.Value:
            provided = scope.functions.get(name)
            if provided is None:
                raise ExpressionEvaluationError(
                    f"{node.written}() is only available in a step's if:", text, node.position,
                    code="status-function")
            return provided()

        return status
    impl = fn.BUILTINS[name].impl
    position = node.position

    def call(scope: Scope) -> v.Value:
        try:
            return impl(scope, [arg(scope) for arg in args])
        except fn.FunctionFailed as exc:
            raise ExpressionEvaluationError(str(exc), text, position, code=exc.code,
                                            detail=exc.detail) from None

    return call


# ---- the fast evaluator -----------------------------------------------------------------------

_MISSING = object()


def compile_fast(node: Node, text: str) -> Evaluator:
    """The function that evaluates ``node``, as :func:`compile_reference` would."""
    if isinstance(node, Literal):
        value = node.value
        return lambda scope: value
    if isinstance(node, Context):
        name = node.name
        return lambda scope: _model(scope.contexts.get(name))
    if isinstance(node, Not):
        operand = compile_fast(node.operand, text)
        return lambda scope: not _truthy(operand(scope))
    if isinstance(node, Logical):
        return _fast_logical(node, text)
    if isinstance(node, Chain):
        return _fast_chain(node, text)
    if isinstance(node, Access):
        return _fast_access(node, text)
    return _call(node, text, [compile_fast(a, text) for a in node.args])


def _model(value: object) -> v.Value:
    """:func:`values.wrap`, with the plain JSON types tested first."""
    kind = type(value)
    if kind is str or kind is float or kind is bool or value is None:
        return value
    if kind is int:
        return float(value)  # type: ignore[arg-type]
    if kind is dict:
        return v.Obj(value)  # type: ignore[arg-type]
    if kind is list:
        return v.Arr(value)  # type: ignore[arg-type]
    return v.wrap(value)


def _truthy(value: v.Value) -> bool:
    if value is True:
        return True
    if value is False or value is None:
        return False
    return v.truthy(value)


def _fast_logical(node: Logical, text: str) -> Evaluator:
    operands = [compile_fast(n, text) for n in node.operands]
    if len(operands) == 2:
        first, second = operands
        if node.op == "&&":
            def both(scope: Scope) -> v.Value:
                left = first(scope)
                return second(scope) if _truthy(left) else left

            return both

        def either(scope: Scope) -> v.Value:
            left = first(scope)
            return left if _truthy(left) else second(scope)

        return either
    stop_when = node.op == "||"

    def run(scope: Scope) -> v.Value:
        result: v.Value = None
        for operand in operands:
            result = operand(scope)
            if _truthy(result) is stop_when:
                break
        return result

    return run


def _eq(a: v.Value, b: v.Value) -> bool:
    kind = type(a)
    if kind is type(b) and (kind is float or kind is bool):
        return bool(a == b)
    return v.equals(a, b)


def _ge(a: v.Value, b: v.Value) -> bool:
    if type(a) is float and type(b) is float:
        return a >= b  # what equals(a, b) or greater(a, b) gives numbers, NaN included
    return v.equals(a, b) or v.greater(a, b)


def _le(a: v.Value, b: v.Value) -> bool:
    if type(a) is float and type(b) is float:
        return a <= b
    return v.equals(a, b) or v.less(a, b)


_FAST_COMPARE: dict[str, Callable[[v.Value, v.Value], bool]] = {
    "==": _eq,
    "!=": lambda a, b: not _eq(a, b),
    "<": v.less,
    ">": v.greater,
    "<=": _le,
    ">=": _ge,
}


def _fast_chain(node: Chain, text: str) -> Evaluator:
    first = compile_fast(node.first, text)
    if len(node.rest) == 1:
        op, other = node.rest[0]
        if op in ("==", "!=") and isinstance(other, Literal) and type(other.value) is str:
            return _string_equality(first, other.value, negate=op == "!=")
        compare = _FAST_COMPARE[op]
        second = compile_fast(other, text)
        return lambda scope: compare(first(scope), second(scope))
    return _chained(first, [(_FAST_COMPARE[op], compile_fast(n, text)) for op, n in node.rest])


def _string_equality(first: Evaluator, literal: str, negate: bool) -> Evaluator:
    """``x == 'text'``: the literal's upper case is computed once."""
    upper = v.upper_special(literal)

    def run(scope: Scope) -> v.Value:
        left = first(scope)
        if type(left) is str:
            same = left == literal or v.upper_special(left) == upper
        else:
            same = v.equals(left, literal)
        return same is not negate

    return run


def _fast_access(node: Access, text: str) -> Evaluator:
    """A path: plain dictionaries are read with ``dict.get`` while the path's names are lower
    case and so are all the dictionary's keys (then no other key can match regardless of
    case); any other value takes the reference's step."""
    base = node.base
    first: Evaluator
    if isinstance(base, Context):
        context = base.name
        first = lambda scope: scope.contexts.get(context)  # noqa: E731 - plain, not wrapped
    else:
        first = compile_fast(base, text)
    steps: list[tuple[str | None, _Step]] = []
    for accessor in node.accessors:
        plain = accessor.name if isinstance(accessor, Prop) and \
            accessor.name == accessor.name.lower() else None
        steps.append((plain, _accessor(accessor, text, compile_fast)))

    def run(scope: Scope) -> v.Value:
        value = first(scope)
        for plain, step in steps:
            if type(value) is dict:
                if plain is not None:
                    try:
                        keys = "".join(value)
                    except TypeError:  # not JSON: the reference's step says so
                        keys = "NOT LOWER CASE"
                    if keys == keys.lower():
                        value = value.get(plain)
                        continue
                value = v.Obj(value)
            elif type(value) is not v.Obj:
                value = _model(value)
            value = step(value, scope)
        return _model(value)

    return run
