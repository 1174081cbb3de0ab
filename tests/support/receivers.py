"""Real receivers on 127.0.0.1 for notifications: an HTTP server that records every POST
(and can answer 5xx a few times first), and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: Any


class _Http(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    posts: list[Posted]
    failures_left: int
    holding: threading.Event | None  # the next POST is answered once this is set


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    server: _Http

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        posted = Posted(self.path, {k.lower(): v for k, v in self.headers.items()},
                        json.loads(raw or b"null"))
        hold, self.server.holding = self.server.holding, None
        status = 200
        if hold is not None:  # recorded on arrival, answered late (its sender may be dead)
            self.server.posts.append(posted)
            hold.wait(60)
        elif self.server.failures_left > 0:
            self.server.failures_left -= 1
            status = 503
        else:
            self.server.posts.append(posted)
        with contextlib.suppress(OSError):
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")


@dataclass
class HttpReceiver:
    port: int
    server: _Http

    @property
    def posts(self) -> list[Posted]:
        return self.server.posts

    def fail_next(self, times: int) -> None:
        self.server.failures_left = times

    def hold_next(self) -> threading.Event:
        """Record the next POST when it arrives but answer it only once the returned event
        is set (to kill its sender between sending and recording)."""
        self.server.holding = threading.Event()
        return self.server.holding


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    server = _Http(("127.0.0.1", 0), _Handler)
    server.posts, server.failures_left, server.holding = [], 0, None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HttpReceiver(int(server.server_address[1]), server)
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class MailReceiver:
    port: int
    messages: list[Message] = field(default_factory=list)
    holding: threading.Event | None = None  # the next message is answered once this is set

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        hold, self.holding = self.holding, None
        deadline = time.monotonic() + 60
        while hold is not None and not hold.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # other sessions go on meanwhile
        return "250 OK"

    def hold_next(self) -> threading.Event:
        """Keep the next message when it arrives but answer it only once the returned event
        is set (to kill its sender between sending and recording)."""
        self.holding = threading.Event()
        return self.holding


@contextmanager
def smtp_receiver() -> Iterator[MailReceiver]:
    from aiosmtpd.controller import Controller

    inbox = MailReceiver(free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def wait_for(check: Callable[[], bool], seconds: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")
