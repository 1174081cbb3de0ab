"""What a forgotten text looks like wherever it was copied: the matching behind erasure.

A memory item's text reaches records in other forms than its own: JSON-escaped inside a
string (``toJSON``), ASCII-escaped, URL- or base64-encoded (the forms of
:func:`aiosrun.runtime.secrets.renderings`), and cut (an episode keeps 80 characters of an
output; a message is shortened, often with ``...``). :class:`Scrubber` puts ``[forgotten]``
in place of each:

- a text of 8 characters or more wherever one of its forms occurs, and a cut copy: at
  least its first (or last) 16 characters that end (or begin) a string or stand before
  (after) ``...`` or ``…``;
- a text of 4 to 7 characters only as a whole word (``Pixel``, not ``Pixelated``): as a
  substring it would eat into unrelated words;
- a shorter one only where a string is that text and nothing else.

Structure is never rewritten: the top-level fields of a record that projections and replay
read (a step's path, a status, a playbook's IR and digest, ids and keys) keep their values,
so a redacted log folds and resumes as before (``docs/decisions.md``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from aiosrun.runtime.secrets import renderings

PLACEHOLDER = "[forgotten]"
WHOLE = 8  # from this length on, a text is matched anywhere
WORD = 4  # from this length on (below WHOLE), as a whole word
CUT = 16  # a cut copy keeps at least this many of the text's characters
MARKERS = ("...", "…")
STRUCTURE = frozenset({
    "path", "id", "gate", "step", "status", "digest", "ir", "source", "name", "playbook",
    "parent", "parent_step", "key", "idempotency_key", "event", "attempt", "attempts",
    "decision", "action", "error_class", "commit", "timeout_at", "due_at", "on_timeout",
    "seq", "by", "reused_from", "continued", "model", "tier", "uses", "run", "kind", "type",
})


class Scrubber:
    """Replaces the copies of some texts; built once per erasure (or per process)."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.texts = tuple(dict.fromkeys(t for t in texts if t.strip()))
        whole: set[str] = set()
        words: set[str] = set()
        self._exact: set[str] = set()
        for text in self.texts:
            if len(text) >= WHOLE:
                whole |= renderings(text)
            elif len(text.strip()) >= WORD:
                words |= _json_forms(text.strip())
            else:
                self._exact.add(text.strip())
        parts = [re.escape(f) for f in sorted(whole, key=len, reverse=True)]
        if words:
            alternatives = "|".join(re.escape(f) for f in sorted(words, key=len, reverse=True))
            parts.append(rf"(?<!\w)(?:{alternatives})(?!\w)")
        self._pattern = re.compile("|".join(parts)) if parts else None
        self._cuts = sorted({f for t in self.texts if len(t) > CUT for f in _json_forms(t)},
                            key=len, reverse=True)
        # what a log line (JSON, UTF-8) holding a copy must contain: a cheap test of bytes
        probes = {f[:CUT] for f in whole} | {f[-CUT:] for f in whole} | words | self._exact
        self._probes = sorted({_in_line(p) for p in probes if p}, key=len)

    def __bool__(self) -> bool:
        return bool(self.texts)

    def may_hold(self, data: bytes) -> bool:
        """Whether encoded JSON ``data`` may hold a copy (never False when it does)."""
        return any(probe in data for probe in self._probes)

    def text(self, value: str) -> str:
        if value.strip() in self._exact:
            return PLACEHOLDER
        if self._pattern is not None:
            value = self._pattern.sub(PLACEHOLDER, value)
        for form in self._cuts:
            value = _cut_copies(value, form)
        return value

    def data(self, value: Any, *, record: bool = False) -> Any:
        """``value`` with every copy replaced; with ``record``, the top-level fields of
        :data:`STRUCTURE` are kept as they are."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {(k if record and k in STRUCTURE else self.text(str(k))):
                    (v if record and k in STRUCTURE else self.data(v))
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value

    def holds(self, value: Any) -> bool:
        return bool(self.data(value) != value)


def _json_forms(text: str) -> set[str]:
    return {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}


def _in_line(form: str) -> bytes:
    """The bytes ``form`` has inside a string of an encoded record line."""
    return json.dumps(form, ensure_ascii=False)[1:-1].encode("utf-8")


def _cut_copies(value: str, form: str) -> str:
    """Replace the cut copies of ``form`` in ``value``: its beginning ending the string (or
    a cut marker), or its end beginning the string (or following a marker)."""
    head, tail = form[:CUT], form[-CUT:]
    start = value.find(head)
    while start != -1:
        length = _common(value, start, form)
        end = start + length
        rest = value[end:]
        marker = next((m for m in MARKERS if rest.startswith(m)), None)
        if length < len(form) and (not rest.strip() or marker):
            stop = end + len(marker) if marker else len(value)
            value = value[:start] + PLACEHOLDER + value[stop:]
        start = value.find(head, start + 1)
    end = value.rfind(tail)
    while end != -1:
        stop = end + CUT
        length = _common_back(value, stop, form)
        begin = stop - length
        before = value[:begin]
        marker = next((m for m in MARKERS if before.endswith(m)), None)
        if length < len(form) and (not before.strip() or marker):
            begin -= len(marker) if marker else len(before)
            value = value[:begin] + PLACEHOLDER + value[stop:]
            end = value.rfind(tail, 0, begin)
        else:
            end = value.rfind(tail, 0, end)
    return value


def _common(value: str, start: int, form: str) -> int:
    length = 0
    limit = min(len(form), len(value) - start)
    while length < limit and value[start + length] == form[length]:
        length += 1
    return length


def _common_back(value: str, stop: int, form: str) -> int:
    length = 0
    limit = min(len(form), stop)
    while length < limit and value[stop - 1 - length] == form[-1 - length]:
        length += 1
    return length
