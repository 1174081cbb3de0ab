"""Durations as written in playbooks (``500ms``, ``30s``, ``1h30m``, ``7d``) -> milliseconds."""

from __future__ import annotations

import re

_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration(text: str) -> int | None:
    """Milliseconds, or None when ``text`` is not a duration."""
    if not isinstance(text, str) or not text:
        return None
    total = 0
    pos = 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            return None
        total += int(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) else None


def format_duration(ms: int) -> str:
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
