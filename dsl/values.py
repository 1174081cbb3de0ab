"""The value model of ``${{ }}`` expressions: GitHub Actions' kinds, coercions and JSON.

Values are plain Python where possible (``None``, ``bool``, ``float``, ``str``) and two thin
wrappers for containers: :class:`Obj` (case-insensitive, first key wins, JavaScript key order)
and :class:`Arr`. Context data is wrapped lazily, one container at a time, as an expression
reaches into it, so evaluating ``inputs.x`` never walks the whole context. Numbers follow
JavaScript: every number is a double, and number <-> string conversions are JavaScript's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

Value = Any  # None | bool | float | str | Arr | Obj

_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")


class Obj:
    """A dictionary as expressions see it: keys compare case-insensitively, the first of two
    keys that differ only in case wins, and integer-like keys come first as in JavaScript."""

    __slots__ = ("_index", "raw")

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self._index: dict[str, str] | None = None

    def _keys(self) -> list[str]:
        keys = list(self.raw)
        if any(map(str.isdigit, keys)):  # rare: JavaScript puts array-index keys first
            numeric = [k for k in keys if _ARRAY_INDEX.fullmatch(k) and int(k) < 2**32 - 1]
            chosen = set(numeric)
            keys = sorted(numeric, key=int) + [k for k in keys if k not in chosen]
        return keys

    def index(self) -> dict[str, str]:
        if self._index is None:
            # reversed: of keys equal but for case, the first one ends up in the index
            self._index = {key.lower(): key for key in reversed(self._keys())}
        return self._index

    def get(self, key: str) -> Value | None:
        """The value for ``key`` (any case), or ``None`` when absent."""
        index = self._index if self._index is not None else self.index()
        actual = index.get(key.lower())
        return wrap(self.raw[actual]) if actual is not None else None

    def items(self) -> Iterator[tuple[str, Value]]:
        index = self.index()
        for key in self._keys():
            if index[key.lower()] == key:  # a later key equal but for case is shadowed
                yield key, wrap(self.raw[key])

    def values(self) -> Iterator[Value]:
        for _, value in self.items():
            yield value


class Arr:
    """An array; ``filtered`` marks the result of a ``.*`` filter (it maps further accesses)."""

    __slots__ = ("filtered", "raw")

    def __init__(self, raw: Sequence[Any], filtered: bool = False) -> None:
        self.raw = raw
        self.filtered = filtered

    def __len__(self) -> int:
        return len(self.raw)

    def __iter__(self) -> Iterator[Value]:
        return (wrap(v) for v in self.raw)

    def get(self, index: int) -> Value:
        return wrap(self.raw[index])


_PASS_THROUGH = frozenset({str, bool, float, type(None)})


def wrap(value: Any) -> Value:
    """Turn a plain Python value into the expression model (cheap: containers are wrapped, not
    copied)."""
    if type(value) in _PASS_THROUGH or isinstance(value, (str, bool, float, Obj, Arr)):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, Mapping):
        return Obj(value)
    if isinstance(value, (list, tuple)):
        return Arr(value)
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def to_python(value: Value) -> Any:
    """Back to plain JSON-like Python; integral numbers come back as ``int``."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    if isinstance(value, Obj):
        return {k: to_python(v) for k, v in value.items()}
    if isinstance(value, Arr):
        return [to_python(v) for v in value]
    return value


def kind(value: Value) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, float):
        return "Number"
    if isinstance(value, str):
        return "String"
    if isinstance(value, Arr):
        return "Array"
    return "Object"


def is_primitive(value: Value) -> bool:
    return not isinstance(value, (Arr, Obj))


# ---- coercions ---------------------------------------------------------------------------

def truthy(value: Value) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return not (value == 0 or math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True


def to_number(value: Value) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        return js_string_to_number(value)
    return math.nan


def to_string(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number_to_string(value)
    if isinstance(value, str):
        return value
    return "Array" if isinstance(value, Arr) else "Object"


_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008" \
            "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_RADIX = {"0x": 16, "0X": 16, "0o": 8, "0O": 8, "0b": 2, "0B": 2}
_RADIX_DIGITS = {16: re.compile(r"[0-9a-fA-F]+"), 8: re.compile(r"[0-7]+"), 2: re.compile(r"[01]+")}


def js_string_to_number(text: str) -> float:
    """JavaScript's ``Number(text)``."""
    text = text.strip(_JS_SPACE)
    if not text:
        return 0.0
    radix = _RADIX.get(text[:2])
    if radix is not None:
        digits = text[2:]
        return float(int(digits, radix)) if _RADIX_DIGITS[radix].fullmatch(digits) else math.nan
    if not _DECIMAL.fullmatch(text):
        return math.nan
    if text.endswith("Infinity"):
        return -math.inf if text.startswith("-") else math.inf
    return float(text)


def js_number_to_string(x: float) -> str:
    """JavaScript's ``Number.prototype.toString()``: shortest round-trip digits, fixed notation
    from 1e-7 to 1e21, exponential outside."""
    if math.isnan(x):
        return "NaN"
    if x == 0:
        return "0"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    sign = "-" if x < 0 else ""
    mantissa, _, exponent = repr(abs(x)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    k, n = len(digits), point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    exp = f"e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + (digits if k == 1 else digits[0] + "." + digits[1:]) + exp


def number_to_string(x: float) -> str:
    """How GitHub turns a number into text: at most 15 decimals, then JavaScript's toString."""
    if x == 0:
        return "0"
    if math.isnan(x) or math.isinf(x) or abs(x) >= 1e21:
        return js_number_to_string(x)
    if x.is_integer():
        return str(int(x))
    rounded = Decimal(x).quantize(Decimal("1e-15"), rounding=ROUND_HALF_UP)
    return js_number_to_string(float(rounded))


# ---- comparison (JavaScript's abstract equality, case-insensitive strings) --------------

def _coerce_pair(left: Value, right: Value) -> tuple[Value, Value]:
    while True:
        lk, rk = kind(left), kind(right)
        if lk == rk:
            return left, right
        if lk == "Number" and rk == "String":
            return left, to_number(right)
        if lk == "String" and rk == "Number":
            return to_number(left), right
        if lk in ("Null", "Boolean"):
            left = to_number(left)
            continue
        if rk in ("Null", "Boolean"):
            right = to_number(right)
            continue
        return left, right


DOTLESS_I = "\u0131"


def upper_special(text: str) -> str:
    """Upper-case except the dotless i (U+0131), as GitHub does, so it stays distinct from I."""
    if DOTLESS_I not in text:
        return text.upper()
    return DOTLESS_I.join(part.upper() for part in text.split(DOTLESS_I))


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-be", "surrogatepass")


def equals(left: Value, right: Value) -> bool:
    kind_left = type(left)
    if kind_left is type(right):  # fast paths for the common same-kind comparisons
        if kind_left is str:
            return left == right or upper_special(left) == upper_special(right)
        if kind_left is float or kind_left is bool:
            return bool(left == right)
    left, right = _coerce_pair(left, right)
    lk = kind(left)
    if lk != kind(right):
        return False
    if lk == "Null":
        return True
    if lk == "String":
        return bool(upper_special(left) == upper_special(right))
    if lk in ("Number", "Boolean"):
        return bool(left == right)  # NaN != NaN, as wanted
    return bool(left.raw is right.raw)  # containers: the same object, as in JavaScript


def greater(left: Value, right: Value) -> bool:
    if type(left) is float and type(right) is float:
        return left > right
    left, right = _coerce_pair(left, right)
    lk = kind(left)
    if lk != kind(right):
        return False
    if lk == "Number":
        return bool(left > right)
    if lk == "String":
        return _utf16(upper_special(left)) > _utf16(upper_special(right))
    if lk == "Boolean":
        return bool(left and not right)
    return False


def less(left: Value, right: Value) -> bool:
    if type(left) is float and type(right) is float:
        return left < right
    left, right = _coerce_pair(left, right)
    lk = kind(left)
    if lk != kind(right):
        return False
    if lk == "Number":
        return bool(left < right)
    if lk == "String":
        return _utf16(upper_special(left)) < _utf16(upper_special(right))
    if lk == "Boolean":
        return bool(not left and right)
    return False


# ---- JSON (toJSON / fromJSON) -------------------------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
            "\t": "\\t"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\ud800-\udfff]')


def _json_string(text: str) -> str:
    def escape(match: re.Match[str]) -> str:
        ch = match.group(0)
        return _ESCAPES.get(ch) or f"\\u{ord(ch):04x}"

    return '"' + _NEEDS_ESCAPE.sub(escape, text) + '"'


def to_json(value: Value, indent: str = "") -> str:
    """``JSON.stringify(value, null, 2)`` of the expression value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return js_number_to_string(value) if math.isfinite(value) else "null"
    if isinstance(value, str):
        return _json_string(value)
    inner = indent + "  "
    if isinstance(value, Arr):
        if not len(value):
            return "[]"
        items = [inner + to_json(item, inner) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    pairs = list(value.items())
    if not pairs:
        return "{}"
    body = [f"{inner}{_json_string(k)}: {to_json(v, inner)}" for k, v in pairs]
    return "{\n" + ",\n".join(body) + "\n" + indent + "}"
