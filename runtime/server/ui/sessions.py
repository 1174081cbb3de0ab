"""Logins for the operator's page: a random session id in an HttpOnly, SameSite=Strict
cookie, the session itself (its CSRF token, whether it logged in) in this process's memory.

A restart of ``serve`` logs everyone out, which for one operator costs a token paste and
keeps no session on disk. Visiting ``/ui/login`` makes an anonymous session (so the login
form has a CSRF token too); logging in replaces it with a new id (no fixation). Sessions
expire after :data:`IDLE` of inactivity; at most :data:`MAX_SESSIONS` are kept (the oldest
go first), so requests without a login cannot fill the memory.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

COOKIE = "aiosrun_session"
IDLE = 12 * 3600.0
MAX_SESSIONS = 512


@dataclass
class Session:
    id: str
    csrf: str
    authenticated: bool = False
    seen: float = field(default_factory=time.monotonic)
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) to show once

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())

    def take_flash(self) -> list[tuple[str, str]]:
        out, self.flash = self.flash, []
        return out


class Sessions:
    def __init__(self) -> None:
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.seen > IDLE:
            del self._by_id[session_id]
            return None
        session.seen = now
        self._by_id.move_to_end(session_id)
        return session

    def new(self, authenticated: bool = False) -> Session:
        while len(self._by_id) >= MAX_SESSIONS:
            self._by_id.popitem(last=False)
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), authenticated)
        self._by_id[session.id] = session
        return session

    def drop(self, session: Session) -> None:
        self._by_id.pop(session.id, None)
