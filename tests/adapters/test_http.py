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
    limited_left: int


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
        elif self.path == "/limited-once" and self.server.limited_left > 0:
            self.server.limited_left -= 1
            self.answer(429, {"error": "slow down"}, {"Retry-After": "1"})
        elif self.path == "/bad":
            self.answer(400, {"error": "no"})
        else:
            self.answer(201, {"created": body})


@pytest.fixture
def server() -> Iterator[tuple[Server, int]]:
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.seen, httpd.flaky_left, httpd.limited_left = [], 1, 1
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


def test_a_playbook_retries_a_flaky_invoice_api_with_one_key(tmp_path: Path,
                                                             server: tuple[Server, int]) -> None:
    """Through the runtime: 503 then 201 with the same Idempotency-Key, and a 429's
    Retry-After waited for even though the step's own backoff is shorter."""
    import json as json_module
    import subprocess
    import sys
    import time

    httpd, port = server
    (tmp_path / "aios.yaml").write_text(
        "apiVersion: aiosrun/v1\nkind: Workspace\n"
        f"adapters:\n  http:\n    allow_hosts: ['127.0.0.1:{port}']\n")
    (tmp_path / "invoice.yaml").write_text(f"""apiVersion: aiosrun/v1
kind: Playbook
name: invoice
steps:
  - id: create
    uses: http.request
    with: {{method: POST, url: "http://127.0.0.1:{port}/flaky", json: {{amount: 49}}}}
    retry: {{max_attempts: 3, initial_delay: 10ms, jitter: none}}
  - id: notify
    uses: http.request
    with: {{method: POST, url: "http://127.0.0.1:{port}/limited-once"}}
    retry: {{max_attempts: 2, initial_delay: 10ms, jitter: none}}
""")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "aiosrun.runtime", "run", "invoice.yaml",
                           "--format", "json"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    waited = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    run = json_module.loads(done.stdout)
    assert [(s["id"], s["attempts"], s["outputs"]["status"]) for s in run["steps"]] == [
        ("create", 2, 201), ("notify", 2, 201)]
    flaky = [key for path, key, _ in httpd.seen if path == "/flaky"]
    assert len(flaky) == 2 and flaky[0] == flaky[1] and flaky[0].endswith(":create")
    assert waited >= 1.0  # Retry-After: 1 beat the 10 ms backoff
