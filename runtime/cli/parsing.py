"""Parsing what the operator types: ``-i KEY=VALUE`` inputs, JSON options and ``@file``.

No input may crash a command. Python's ``json`` recurses once per nesting level, so depth is
bounded by a scan before parsing; text must be UTF-8 without lone surrogates (the shell hands
over undecodable bytes as surrogates, and JSON can spell ``\\ud800``), since everything
recorded is UTF-8. Each problem is one line naming the option and where in the value it is.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
from aiosrun.dsl.errors import AiosrunError

MAX_JSON_DEPTH = 64


class InputError(AiosrunError):
    """A value given on the command line (or in a file it names) cannot be used."""


def _position(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line} column {column}"


def check_depth(text: str, where: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` (brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= limit:
        return
    depth = 0
    in_string = escaped = False
    for offset, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                raise InputError(f"{where}: {_position(text, offset)}: nested more than "
                                 f"{limit} levels deep")
        elif char in "]}":
            depth -= 1


def check_text(value: Any, where: str, text: str | None = None) -> None:
    """Refuse strings that are not text (lone surrogates), anywhere in ``value``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            for offset, char in enumerate(item):
                if "\ud800" <= char <= "\udfff":
                    if "\udc80" <= char <= "\udcff":
                        what = f"byte 0x{ord(char) - 0xdc00:02x} is not UTF-8"
                    else:
                        what = f"a lone surrogate \\u{ord(char):04x} is not text"
                    at = ""
                    if text is not None and item is text:
                        at = f" at {_position(text, offset)}"
                    raise InputError(f"{where}{at}: {what}; give UTF-8 text")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_json(text: str, where: str) -> Any:
    """JSON from an option or a file: bounded depth, real text, a positioned error."""
    check_text(text, where, text)
    check_depth(text, where)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: line {exc.lineno} column {exc.colno}: not JSON: "
                         f"{exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{where}: not JSON: {exc}") from None
    check_text(value, where)
    return value


def read_text_file(path: str, where: str) -> str:
    """A UTF-8 text file, with the byte offset of the first byte that is not UTF-8."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: byte {exc.start}: 0x{raw[exc.start]:02x} is not UTF-8; "
                         "give UTF-8 text") from None


def json_option(value: str, where: str) -> Any:
    """An option that takes JSON, or ``@FILE`` holding JSON."""
    if value.startswith("@"):
        return parse_json(read_text_file(value[1:], where), f"{where} {value}")
    return parse_json(value, where)


def parse_inputs(pairs: tuple[str, ...], inputs_file: Path | None) -> dict[str, Any]:
    """``--inputs FILE`` (JSON or YAML) overlaid with ``-i KEY=VALUE`` pairs; dots in KEY
    make nested keys. A VALUE is JSON if it parses as JSON, else text."""
    from aiosrun.dsl.errors import PlaybookError
    from aiosrun.dsl.loader import load_file

    values: dict[str, Any] = {}
    if inputs_file is not None:
        try:
            values = load_file(inputs_file).data
        except PlaybookError as exc:
            raise InputError(str(exc)) from None
    origin: dict[tuple[str, ...], str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="-i")
        parts = key.split(".")
        if "" in parts:
            raise click.BadParameter(f"{pair!r}: key part {parts.index('') + 1} of '{key}' is "
                                     "empty", param_hint="-i")
        check_text(raw, f"-i {key}", raw)
        check_text(key, "-i", key)
        check_depth(raw, f"-i {key}")
        value: Any
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            value = raw
        check_text(value, f"-i {key}")
        target = values
        for depth, part in enumerate(parts[:-1], start=1):
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                given = origin.get(tuple(parts[:depth]), "--inputs")
                raise click.BadParameter(f"{pair!r}: '{'.'.join(parts[:depth])}' is already "
                                         f"a value (from {given}), not a mapping",
                                         param_hint="-i")
            target = child
        target[parts[-1]] = value
        origin[tuple(parts)] = f"-i {pair}"
    return values


class Interval(click.FloatRange):
    """Seconds between ``min`` and ``max``; NaN and infinity are refused (they compare
    false with both bounds, so a plain FloatRange lets them through)."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return number
