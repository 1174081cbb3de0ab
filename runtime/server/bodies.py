"""Reading a request body within the server's limits, and parsing it.

The body is read from the stream in chunks, counted against ``server.max_body`` (413 as soon
as it is over, whatever ``Content-Length`` claimed) and against the read timeout (408), so
neither a large nor a slow upload can hold the server.
"""

from __future__ import annotations

import json
from typing import Any

import trio
from starlette.requests import ClientDisconnect, Request

from .responses import ApiError


async def read_body(request: Request, max_body: int, timeout: float) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise too_large(max_body)
    chunks: list[bytes] = []
    size = 0
    try:
        with trio.fail_after(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_body:
                    raise too_large(max_body)
                chunks.append(chunk)
    except trio.TooSlowError:
        raise ApiError(408, "timeout", f"the request body did not arrive within "
                       f"{timeout:g}s") from None
    except ClientDisconnect:
        raise ApiError(400, "malformed", "the client went away while sending the body") from None
    return b"".join(chunks)


def too_large(max_body: int) -> ApiError:
    return ApiError(413, "too_large", f"the request body is over server.max_body "
                    f"({max_body} bytes)")


def parse_object(raw: bytes, *, empty_ok: bool = False) -> dict[str, Any]:
    """The body as a JSON object; 400 for anything else."""
    if not raw.strip() and empty_ok:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed", f"the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "malformed", "the body must be a JSON object")
    return value
