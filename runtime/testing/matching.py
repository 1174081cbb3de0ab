"""Partial matching of what a test expects against what a run did.

Objects match when every key the test gives matches (other keys may be there); lists match
element by element and must be as long; numbers compare by value (``3 == 3.0``). Each
mismatch names the path of the deepest expectation that failed, for a positioned message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Path = tuple[str | int, ...]


def mismatches(expected: Any, actual: Any, path: Path) -> list[tuple[Path, Any, Any]]:
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [(path, expected, actual)]
        found: list[tuple[Path, Any, Any]] = []
        for key, wanted in expected.items():
            if key not in actual:
                found.append(((*path, key), wanted, "no such key"))
            else:
                found += mismatches(wanted, actual[key], (*path, key))
        return found
    if isinstance(expected, Sequence) and not isinstance(expected, str):
        if not isinstance(actual, Sequence) or isinstance(actual, str) \
                or len(actual) != len(expected):
            return [(path, expected, actual)]
        found = []
        for number, (wanted, got) in enumerate(zip(expected, actual, strict=True)):
            found += mismatches(wanted, got, (*path, number))
        return found
    if isinstance(expected, bool) or isinstance(actual, bool):
        return [] if expected is actual else [(path, expected, actual)]
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return [] if expected == actual else [(path, expected, actual)]
    return [] if expected == actual else [(path, expected, actual)]
