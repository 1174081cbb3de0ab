"""A local server speaking the OpenAI chat-completions wire protocol, for tests and benchmarks.

Only the remote paid service is replaced: openai, instructor and httpx run for real against
it. A script decides each answer from the request: a status code (503, 429 with Retry-After)
or an answer object, sent back as a tool call when the request offers tools, as JSON content
when it asks for JSON, and as plain text otherwise. An agent's turn is answered with
``tool_calls`` (the tools the model calls, by name, with their arguments) or with text
(``text=True``) even though tools are on offer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the server answers to one request."""

    content: Any = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    tool_calls: list[tuple[str, Any]] | None = None  # (name, arguments: an object or text)
    text: bool = False  # answer with content even when the request offers tools


Script = Callable[[dict[str, Any]], Reply]


def default_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI.Server

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        owner = self.server.owner
        with owner.lock:
            owner.requests.append({"path": self.path, "body": request,
                                   "headers": {k.lower(): v for k, v in self.headers.items()}})
        if self.path.endswith("/embeddings"):
            self._send(200, embeddings(request))
            return
        if not self.path.endswith("/chat/completions"):
            self._send(404, {"error": {"message": "not found"}})
            return
        reply = owner.script(request)
        if reply.status != 200:
            self._send(reply.status, {"error": {"message": f"status {reply.status}"}},
                       reply.headers)
            return
        self._send(200, completion(request, reply))

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def completion(request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    """A chat-completions response carrying ``reply.content`` the way the request asked."""
    message: dict[str, Any] = {"role": "assistant", "content": None}
    tools = request.get("tools")
    if reply.tool_calls is not None:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {
                "name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
            for i, (name, args) in enumerate(reply.tool_calls, 1)]
        text = json.dumps(reply.tool_calls)
        finish = "tool_calls"
    elif tools and not reply.text:
        text = json.dumps(reply.content)
        message["tool_calls"] = [{"id": "call_1", "type": "function", "function": {
            "name": tools[0]["function"]["name"], "arguments": text}}]
        finish = "tool_calls"
    else:
        text = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
        message["content"] = text
        finish = "stop"
    prompt = reply.prompt_tokens
    if prompt is None:
        prompt = default_tokens(json.dumps(request.get("messages", [])))
    answer = reply.completion_tokens if reply.completion_tokens is not None \
        else default_tokens(text)
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0,
            "model": request.get("model", ""),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": answer,
                      "total_tokens": prompt + answer}}


def embeddings(request: dict[str, Any]) -> dict[str, Any]:
    """Deterministic 16-dimensional vectors: letter counts, so similar texts are close."""
    texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
    data = []
    for index, text in enumerate(texts):
        vector = [0.0] * 16
        for ch in text.lower():
            if ch.isalpha():
                vector[ord(ch) % 16] += 1.0
        data.append({"object": "embedding", "index": index, "embedding": vector})
    return {"object": "list", "data": data, "model": request.get("model", ""),
            "usage": {"prompt_tokens": 0, "total_tokens": 0}}


class FakeOpenAI:
    """``with FakeOpenAI(script) as api:`` serves on ``api.base_url`` until the block ends."""

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128
        owner: FakeOpenAI

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        _Handler.disable_nagle_algorithm = True
        self.server = self.Server(("127.0.0.1", 0), _Handler)
        self.server.owner = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
