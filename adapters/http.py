"""``http``: HTTP requests to the hosts the workspace allows, with an ``Idempotency-Key``.

Hosts outside ``adapters.http.allow_hosts`` (``api.example.com``, ``*.example.com``,
``127.0.0.1:8080``; no list allows nothing) are refused before any connection. Every request
carries the step's idempotency key, so a server that honours the header applies a retried
request once. Responses map onto the error classes: 429 is ``rate_limit`` (``Retry-After``
honoured), 5xx and connection failures are ``transient``, other 4xx ``permanent``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import fnmatch
import json
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .base import (
    Action,
    Adapter,
    CallContext,
    PermanentError,
    RateLimited,
    TransientError,
    resolve_secrets,
)


class HttpAdapter(Adapter):
    name = "http"
    description = "HTTP requests to allowed hosts, with an Idempotency-Key header."
    actions: ClassVar[Mapping[str, Action]] = {
        "request": Action("Sends one request; returns status, headers, json and text.", {
            "type": "object", "required": ["url"], "additionalProperties": False,
            "properties": {
                "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]},
                "url": {"type": "string", "pattern": "^https?://"},
                "json": {}, "body": {"type": "string"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "timeout": {"type": "number", "exclusiveMinimum": 0}}}),
    }

    async def call(self, action: str, args: Mapping[str, Any],
                   ctx: CallContext) -> Mapping[str, Any]:
        import httpx

        url = str(args["url"])
        allowed = [str(h) for h in ctx.settings.get("allow_hosts", [])]
        if not host_allowed(url, allowed):
            raise PermanentError(f"{urlsplit(url).netloc} is not in adapters.http.allow_hosts "
                                 f"({', '.join(allowed) or 'empty: no host is allowed'})")
        headers = {k: resolve_secrets(v, ctx.secrets)
                   for k, v in dict(ctx.settings.get("headers", {})).items()}
        given = dict(args.get("headers", {}))
        headers.update({k: resolve_secrets(v, ctx.secrets) for k, v in given.items()})
        headers["Idempotency-Key"] = ctx.idempotency_key
        timeout = float(args.get("timeout", _seconds(ctx.settings.get("timeout", "30s"))))
        request: dict[str, Any] = {"headers": headers}
        if "json" in args:
            request["json"] = args["json"]
        elif "body" in args:
            request["content"] = str(args["body"]).encode("utf-8")
        try:
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
                response = await client.request(str(args.get("method", "GET")), url,
                                                **request)
        except httpx.HTTPError as exc:
            raise TransientError(f"{args.get('method', 'GET')} {url}: "
                                 f"{type(exc).__name__}: {exc}") from None
        status = response.status_code
        if status == 429:
            raise RateLimited(f"{url} answered 429 Too Many Requests",
                              retry_after(response.headers.get("retry-after")))
        if status >= 500:
            raise TransientError(f"{url} answered {status}")
        if status >= 400:
            raise PermanentError(f"{url} answered {status}: {ctx.mask(response.text)[:200]}")
        try:
            body = response.json() if response.content else None
        except (ValueError, json.JSONDecodeError):
            body = None
        return {"status": status, "headers": dict(response.headers), "json": body,
                "text": response.text}


def host_allowed(url: str, patterns: list[str]) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for pattern in patterns:
        name, _, wanted_port = pattern.lower().partition(":")
        if fnmatch.fnmatchcase(host, name) and (not wanted_port or wanted_port == str(port)):
            return True
    return False


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - dt.datetime.now(dt.UTC)).total_seconds())


def _seconds(duration: Any) -> float:
    """A workspace duration (``30s``, ``2m``) in seconds."""
    from aiosrun.dsl.durations import parse_duration

    ms = parse_duration(str(duration))
    return ms / 1000 if ms else 30.0
