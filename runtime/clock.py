"""The runtime's idea of "now" for timers (gate timeouts, waits, retry delays after a crash).

It is the wall clock, unless a playbook test installed its virtual clock, or ``AIOS_NOW``
holds an RFC 3339 time: then that is "now" for
timer decisions, so tests can move time forward and an operator can ask what
``aiosrun resume --all`` would fire at a given moment. Log timestamps stay real.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


_virtual: Callable[[], dt.datetime] | None = None  # a playbook test's clock


def use_virtual(source: Callable[[], dt.datetime] | None) -> None:
    """Make ``source`` the runtime's "now" (``aiosrun test``), or the wall clock again."""
    global _virtual
    _virtual = source


def now() -> dt.datetime:
    if _virtual is not None:
        return _virtual()
    fixed = os.environ.get("AIOS_NOW")
    if fixed:
        moment = dt.datetime.fromisoformat(fixed.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return dt.datetime.now(dt.UTC)


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime(FORMAT)


def parse(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, FORMAT).replace(tzinfo=dt.UTC)
