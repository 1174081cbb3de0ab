"""Bearer-token authentication in front of every route but ``/hooks/*``, ``/healthz`` and
the operator's page ``/ui/`` (which checks its own session cookie, see :mod:`.ui.sessions`).

Webhooks prove themselves by their signatures (:mod:`.webhooks`) and liveness must be
answerable by a load balancer; everything else, unknown paths included, is refused without
a token, so an unauthenticated client learns nothing, not even which routes exist. Tokens
are compared in constant time, each one, so the time taken says nothing about a near miss.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from .responses import ApiError, error_response

OPEN_PATHS = ("/healthz", "/ui")
OPEN_PREFIXES = ("/hooks/", "/ui/")  # the page logs in with a token and keeps a session


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def token_matches(header: bytes | None, tokens: Sequence[bytes]) -> bool:
    if header is None or header[:7].lower() != b"bearer ":
        return False
    given = header[7:].strip()
    found = False
    for token in tokens:  # no early exit: every token is compared
        found |= hmac.compare_digest(given, token)
    return found


class BearerAuth:
    """ASGI middleware: 401 unless the request carries one of ``tokens``. With no tokens
    (a loopback-only server, see :func:`~.config.load_config`) every request passes."""

    def __init__(self, app: ASGIApp, tokens: Sequence[bytes]) -> None:
        self.app = app
        self.tokens = tuple(tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.tokens or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if token_matches(header, self.tokens):
            await self.app(scope, receive, send)
            return
        problem = ("missing Authorization: Bearer TOKEN" if header is None
                   else "the bearer token is not one of server.tokens")
        response = error_response(ApiError(401, "unauthorized", problem,
                                           headers={"WWW-Authenticate": "Bearer"}))
        await response(scope, receive, send)
