"""Server-Sent Events: the event log's records, live, one SSE message each.

``id:`` is the record's ``seq``, so a client that reconnects with ``Last-Event-ID`` resumes
right after the last record it saw (browsers' ``EventSource`` does this by itself); ``event:``
is the record type and ``data:`` the record as JSON. A comment line every
:data:`KEEPALIVE` seconds keeps proxies from closing a quiet stream. A run's stream ends
after the record that finishes the run; the workspace stream, when the client goes away or
the server stops.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import trio
from starlette.types import Receive, Scope, Send

from .responses import dumps

if TYPE_CHECKING:
    from aiosrun.runtime.engine import Record

KEEPALIVE = 15.0
RUN_ENDS = frozenset({"RunSucceeded", "RunFailed", "RunCompensated", "RunCancelled"})
HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"),
           (b"cache-control", b"no-store"), (b"x-accel-buffering", b"no")]


def message(record: Record) -> bytes:
    """One SSE message for a log record."""
    data = record.to_json()
    return (f"id: {data['seq']}\nevent: {data['type']}\ndata: ".encode()
            + dumps(data) + b"\n\n")


def resume_point(last_event_id: str | None, after: str | None, default: int) -> int:
    """Where a stream starts: after ``Last-Event-ID`` (a reconnect), else ``?after=``,
    else ``default``; -1 when a given value is not a seq."""
    for value in (last_event_id, after):
        if value is not None:
            value = value.strip()
            return int(value) if value.isdigit() else -1
    return default


class EventStream:
    """An ASGI response that streams ``records`` until the client leaves, ``stopping`` is
    set (the server shuts down), or, for a run, the run ends."""

    def __init__(self, records: AsyncIterator[Record], stopping: trio.Event, *,
                 until_run_ends: bool) -> None:
        self.records = records
        self.stopping = stopping
        self.until_run_ends = until_run_ends

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": b": stream open\n\n",
                    "more_body": True})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._until_gone, receive, nursery.cancel_scope)
            nursery.start_soon(self._until_stopping, nursery.cancel_scope)
            nursery.start_soon(self._keepalive, send)
            await self._stream(send)
            nursery.cancel_scope.cancel()
        with contextlib.suppress(OSError):  # the client may be gone already
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stream(self, send: Send) -> None:
        async for record in self.records:
            await send({"type": "http.response.body", "body": message(record),
                        "more_body": True})
            if self.until_run_ends and record.type in RUN_ENDS:
                return
        await trio.sleep(math.inf)  # pragma: no cover  (subscribe never ends by itself)

    async def _keepalive(self, send: Send) -> None:
        while True:
            await trio.sleep(KEEPALIVE)
            await send({"type": "http.response.body", "body": b": keepalive\n\n",
                        "more_body": True})

    async def _until_gone(self, receive: Receive, scope: trio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async def _until_stopping(self, scope: trio.CancelScope) -> None:
        await self.stopping.wait()
        scope.cancel()
