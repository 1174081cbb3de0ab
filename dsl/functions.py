"""The functions of the expression language and GitHub's rules for ``.x``, ``[i]`` and ``.*``.

Each function takes evaluated arguments (see :mod:`values`) and the evaluation scope, which
it charges for the memory of what it creates, so a runaway ``format`` stops at the limit.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from . import values as v
from .errors import ExpressionParsingError

MAX_MEMORY_BYTES = 1024 * 1024  # GitHub's limit for one evaluation
MAX_FORMAT_ARGUMENTS = 255


class Key:
    """An index value as GitHub reads it: as text (if primitive) and as a whole number."""

    __slots__ = ("int", "str")

    def __init__(self, text: str | None, number: int | None) -> None:
        self.str = text
        self.int = number

    @classmethod
    def of(cls, index: v.Value) -> Key:
        text = v.to_string(index) if v.is_primitive(index) else None
        number = v.to_number(index)
        whole = math.floor(number) if math.isfinite(number) and number >= 0 else None
        return cls(text, whole)


class Charges(Protocol):
    def charge(self, size: int) -> None: ...


class FunctionFailed(Exception):
    """Raised by a function; the evaluator turns it into an ExpressionEvaluationError."""

    def __init__(self, message: str, code: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


Impl = Callable[[Charges, list[v.Value]], v.Value]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    min_args: int
    max_args: int
    impl: Impl
    odd_args: bool = False


def arity_ok(spec: FunctionSpec, count: int) -> bool:
    return spec.min_args <= count <= spec.max_args and not (spec.odd_args and count % 2 == 0)


def check_arity(spec: FunctionSpec, written: str, count: int, text: str, position: int) -> None:
    expected = (f"{spec.min_args}" if spec.min_args == spec.max_args
                else f"at least {spec.min_args}" if spec.max_args > MAX_FORMAT_ARGUMENTS
                else f"{spec.min_args} to {spec.max_args}")
    detail = f"{spec.name}() takes {expected} argument{'s' * (expected != '1')}, got {count}"
    if count < spec.min_args:
        raise ExpressionParsingError("Too few parameters supplied: ", text, position,
                                     code="arity", symbol=written, detail=detail)
    if count > spec.max_args:
        raise ExpressionParsingError("Too many parameters supplied: ", text, position,
                                     code="arity", symbol=written, detail=detail)
    if spec.odd_args and count % 2 == 0:
        raise ExpressionParsingError(
            "Even number of parameters supplied, requires an odd number of parameters: "
            f"'{written}'. Located at position {position + 1} within expression: {text}",
            text, position, code="arity", symbol=written,
            detail="case() takes pairs of condition and value, then a default")


def unknown_function_hint(name: str, known: Mapping[str, FunctionSpec]) -> str:
    names = [spec.name for spec in known.values()]
    if name.lower() in STATUS:
        return f"{name}() is a status function, allowed only in a step's if:"
    close = difflib.get_close_matches(name.lower(), [n.lower() for n in names], n=1)
    if close:
        return f"did you mean {next(n for n in names if n.lower() == close[0])}()?"
    return "known functions: " + ", ".join(names)


# ---- property and index access (GitHub's filtered arrays) ---------------------------------

def access(value: v.Value, key: Key | None, scope: Charges) -> v.Value:
    """``value[key]``, or ``value.*`` when ``key`` is None."""
    if isinstance(value, v.Arr):
        if value.filtered:
            return _filtered_access(value, key, scope)
        if key is None:
            items = list(value)
            scope.charge(8 * len(items))
            return v.Arr(items, filtered=True)
        if key.int is not None and key.int < len(value):
            return value.get(key.int)
        return None
    if isinstance(value, v.Obj):
        if key is None:
            items = list(value.values())
            scope.charge(8 * len(items))
            return v.Arr(items, filtered=True)
        if key.str is not None:
            return value.get(key.str)
        return None
    return v.Arr([], filtered=True) if key is None else None


def _filtered_access(array: v.Arr, key: Key | None, scope: Charges) -> v.Arr:
    result: list[v.Value] = []
    for item in array:
        if isinstance(item, v.Obj):
            if key is None:
                result.extend(item.values())
            elif key.str is not None and key.str.lower() in item.index():
                result.append(item.get(key.str))
        elif isinstance(item, v.Arr):
            if key is None:
                result.extend(item)
            elif key.int is not None and key.int < len(item):
                result.append(item.get(key.int))
    scope.charge(8 * len(result))
    return v.Arr(result, filtered=True)


# ---- the functions --------------------------------------------------------------------------

def _text(scope: Charges, text: str) -> str:
    scope.charge(2 * len(text))
    return text


def _contains(scope: Charges, args: list[v.Value]) -> v.Value:
    haystack, needle = args
    if v.is_primitive(haystack):
        if v.is_primitive(needle):
            return v.to_string(needle).lower() in v.to_string(haystack).lower()
        return False
    if isinstance(haystack, v.Arr):
        return any(v.equals(needle, item) for item in haystack)
    return False


def _starts_with(scope: Charges, args: list[v.Value]) -> v.Value:
    text, prefix = args
    if not (v.is_primitive(text) and v.is_primitive(prefix)):
        return False
    return v.upper_special(v.to_string(text)).startswith(v.upper_special(v.to_string(prefix)))


def _ends_with(scope: Charges, args: list[v.Value]) -> v.Value:
    text, suffix = args
    if not (v.is_primitive(text) and v.is_primitive(suffix)):
        return False
    return v.upper_special(v.to_string(text)).endswith(v.upper_special(v.to_string(suffix)))


def _format(scope: Charges, args: list[v.Value]) -> v.Value:
    template = v.to_string(args[0])
    out: list[str] = []
    i = 0
    invalid = FunctionFailed(f"The following format string is invalid: {template}", "format",
                             "write {N} for argument N, {{ and }} for braces")
    while i < len(template):
        left = template.find("{", i)
        right = template.find("}", i)
        if left >= 0 and (right < 0 or right > left):
            if template.startswith("{", left + 1):
                out.append(template[i:left + 1])
                i = left + 2
                continue
            digits = left + 1
            while digits < len(template) and template[digits].isascii() \
                    and template[digits].isdigit():
                digits += 1
            if right > left + 1 and digits > left + 1:
                number = int(template[left + 1:digits])
                if number + 1 > len(args) - 1:
                    raise FunctionFailed(
                        "The following format string references more arguments than were "
                        f"supplied: {template}", "format",
                        f"{{{number}}} needs {number + 1} argument(s) after the format string")
                out.append(template[i:left])
                piece = v.to_string(args[number + 1])
                scope.charge(2 * len(piece))
                out.append(piece)
                i = right + 1
                continue
            raise invalid
        if right >= 0:
            if not template.startswith("}", right + 1):
                raise invalid
            out.append(template[i:right + 1])
            i = right + 2
        else:
            out.append(template[i:])
            break
    return _text(scope, "".join(out))


def _join(scope: Charges, args: list[v.Value]) -> v.Value:
    items = args[0]
    if v.is_primitive(items):
        return v.to_string(items)
    if isinstance(items, v.Arr):
        separator = v.to_string(args[1]) if len(args) > 1 and v.is_primitive(args[1]) else ","
        return _text(scope, separator.join(v.to_string(item) for item in items))
    return ""


def _to_json(scope: Charges, args: list[v.Value]) -> v.Value:
    return _text(scope, v.to_json(args[0]))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _from_json(scope: Charges, args: list[v.Value]) -> v.Value:
    text = v.to_string(args[0])
    if not text.strip(" \t\n\r\v\f\u00a0\u2028\u2029\ufeff"):
        raise FunctionFailed("empty input", "json", "fromJSON() needs JSON text")
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise FunctionFailed("Error parsing JSON when evaluating fromJson", "json",
                             str(exc)) from None
    scope.charge(2 * len(text))
    return v.wrap(parsed)


def _case(scope: Charges, args: list[v.Value]) -> v.Value:
    for i in range(0, len(args) - 1, 2):
        if not isinstance(args[i], bool):
            raise FunctionFailed("case predicate must evaluate to a boolean value", "case",
                                 f"condition {i // 2 + 1} is {v.kind(args[i]).lower()}")
        if args[i]:
            return args[i + 1]
    return args[-1]


BUILTINS: dict[str, FunctionSpec] = {
    spec.name.lower(): spec for spec in (
        FunctionSpec("contains", 2, 2, _contains),
        FunctionSpec("startsWith", 2, 2, _starts_with),
        FunctionSpec("endsWith", 2, 2, _ends_with),
        FunctionSpec("format", 1, MAX_FORMAT_ARGUMENTS, _format),
        FunctionSpec("join", 1, 2, _join),
        FunctionSpec("toJSON", 1, 1, _to_json),
        FunctionSpec("fromJSON", 1, 1, _from_json),
        FunctionSpec("case", 3, 1 << 30, _case, odd_args=True),
    )
}


def _status_unavailable(scope: Charges, args: list[v.Value]) -> v.Value:  # pragma: no cover
    raise AssertionError("status functions are evaluated by the expression's scope")


STATUS: dict[str, FunctionSpec] = {
    name.lower(): FunctionSpec(name, 0, 0, _status_unavailable)
    for name in ("success", "failure", "always", "cancelled")
}
