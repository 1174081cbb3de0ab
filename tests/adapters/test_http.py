"""http against a real server on 127.0.0.1: allow-list, Idempotency-Key, error classes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosrun.adapters.base import PermanentError, RateLimited, TransientError
from aiosrun.adapters.http import HttpAdapter, host_allowed

from .conftest import call

http = HttpAdapter()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    seen: list[tuple[str, str, str | None]]
    flaky_left: int


class Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    server: Server

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"null")
        self.server.seen.append((self.path, self.headers.get("Idempotency-Key", ""),
                                 self.headers.get("Authorization")))
        if self.path == "/flaky" and self.server.flaky_left > 0:
            self.server.flaky_left -= 1
            self.answer(503, {"error": "busy"})
        elif self.path == "/limited":
            self.answer(429, {"error": "slow down"}, {"Retry-After": "7"})
        elif self.path == "/bad":
            self.answer(400, {"error": "no"})
        else:
            self.answer(201, {"created": body})


@pytest.fixture
def server() -> Iterator[tuple[Server, int]]:
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.seen, httpd.flaky_left = [], 1
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd, httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_request_with_idempotency_key_and_secret_header(tmp_path: Path,
                                                        server: tuple[Server, int]) -> None:
    httpd, port = server
    settings = {"allow_hosts": [f"127.0.0.1:{port}"],
                "headers": {"Authorization": "Bearer ${{ secrets.API }}"}}
    result = call(http, "request", {"method": "POST", "url": f"http://127.0.0.1:{port}/ok",
                                    "json": {"a": 1}}, tmp_path, "key-7", settings=settings,
                  secrets={"API": "t0k"})
    assert result["status"] == 201 and result["json"] == {"created": {"a": 1}}
    assert httpd.seen == [("/ok", "key-7", "Bearer t0k")]


def test_error_classes(tmp_path: Path, server: tuple[Server, int]) -> None:
    httpd, port = server
    settings = {"allow_hosts": ["127.0.0.1"]}
    base = f"http://127.0.0.1:{port}"
    with pytest.raises(TransientError):
        call(http, "request", {"method": "POST", "url": f"{base}/flaky"}, tmp_path, "f",
             settings=settings)
    again = call(http, "request", {"method": "POST", "url": f"{base}/flaky"}, tmp_path, "f",
                 settings=settings)
    assert again["status"] == 201
    assert [s[1] for s in httpd.seen] == ["f", "f"]  # the retry carries the same key
    with pytest.raises(RateLimited) as limited:
        call(http, "request", {"method": "POST", "url": f"{base}/limited"}, tmp_path,
             settings=settings)
    assert limited.value.retry_after == 7.0
    with pytest.raises(PermanentError, match="answered 400"):
        call(http, "request", {"method": "POST", "url": f"{base}/bad"}, tmp_path,
             settings=settings)


def test_allow_list_refuses_before_connecting(tmp_path: Path,
                                              server: tuple[Server, int]) -> None:
    httpd, port = server
    for settings in ({}, {"allow_hosts": ["api.example.com", "127.0.0.1:1"]}):
        with pytest.raises(PermanentError, match=r"not in adapters\.http\.allow_hosts"):
            call(http, "request", {"method": "POST", "url": f"http://127.0.0.1:{port}/ok"},
                 tmp_path, settings=settings)
    assert httpd.seen == []
    assert host_allowed("https://api.example.com/x", ["*.example.com"])
    assert not host_allowed("https://example.org/x", ["*.example.com"])
