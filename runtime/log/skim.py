"""A playbook version's record read without parsing its IR.

The workspace's fold needs a version's name, digest, source and commit; its IR (the compiled
playbook, most of the record: 11 MB of JSON for 20,000 steps) is needed only when a run
starts that version, and then usually comes from the decoded-IR cache. Parsing it anyway
cost most of a run start in a freshly opened workspace. So a large version record is parsed
up to its ``"ir"`` key, and the IR is kept as its text (:class:`RawJson`).
"""

from __future__ import annotations

import gc
import json
from typing import Any

SKIM_FROM = 64 * 1024  # records shorter than this are parsed whole: it costs little
_VERSION_TYPES = frozenset({"PlaybookApplied", "PlaybookVersionRecorded"})
_NEEDED = frozenset({"name", "digest"})  # what names the version: written before "ir"
_IR_KEY = ',"ir":'


class RawJson:
    """A record's IR left as the text of its record's body, parsed when asked."""

    __slots__ = ("_body", "_start")

    def __init__(self, body: str, start: int) -> None:
        self._body = body
        self._start = start

    def value(self) -> Any:
        """The parsed IR, with the cyclic collector paused (a large IR is hundreds of
        thousands of small acyclic objects; the collections their allocation set off cost
        more than the parsing). The text from the IR to the body's last two braces is
        exactly the IR when ``"ir"`` is the last key (JSON values delimit themselves:
        anything after it fails the parse); otherwise the whole body is parsed."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            try:
                return json.loads(self._body[self._start:-2])
            except ValueError:
                return json.loads(self._body)["data"]["ir"]
        finally:
            if enabled:
                gc.enable()


def skim_version(body: str) -> dict[str, Any] | None:
    """A large version record's fields with its IR as :class:`RawJson`; None when ``body``
    (a verified record's JSON) is not one, or not in the layout aiosrun writes (the
    envelope, then ``data`` last with its name and digest before ``"ir"``): the caller then
    parses it whole. aiosrun writes the IR as the last field; a field a writer put after it
    would be missing here (the IR itself is always whole: see :meth:`RawJson.value`)."""
    if len(body) < SKIM_FROM:
        return None
    at = body.find(_IR_KEY, 0, 4096)
    if at < 0:
        return None
    try:
        # the first ',"ir":' cannot be inside a string (a quote there is escaped); closing
        # two objects before it parses only if it is a key of an object one level down
        head = json.loads(body[:at] + "}}")
    except ValueError:
        return None
    data = head.get("data") if isinstance(head, dict) else None
    if not isinstance(data, dict) or next(reversed(head)) != "data" or \
            head.get("type") not in _VERSION_TYPES or not data.keys() >= _NEEDED:
        return None
    data["ir"] = RawJson(body, at + len(_IR_KEY))
    skimmed: dict[str, Any] = head
    return skimmed


def plain_ir(encoded: Any) -> Any:
    """The parsed IR, whether held parsed or as :class:`RawJson`."""
    return encoded.value() if isinstance(encoded, RawJson) else encoded
