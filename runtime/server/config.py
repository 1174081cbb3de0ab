"""The ``server`` section of ``aios.yaml``, read once when the server starts.

Secret references (tokens, webhook secrets) are resolved here, so a missing secret stops the
server at start-up with one line instead of failing the first request; the values live only
in these objects and are never rendered back.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiosrun.dsl.durations import parse_duration
from aiosrun.runtime.errors import BadRequest

DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_MAX_CONCURRENT_RUNS = 8
DEFAULT_READ_TIMEOUT = 10.0
SECRET_REF = re.compile(r"\$\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")
LISTEN = re.compile(r"(?:(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]+):)?([0-9]{1,5})")


@dataclass(frozen=True)
class Webhook:
    """One sender: how its deliveries are verified and what event they become."""

    source: str
    event: str
    verify: str
    secrets: tuple[bytes, ...] = field(repr=False)
    header: str = "x-signature-256"
    id: str | None = None


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    tokens: tuple[bytes, ...] = field(repr=False)
    max_body: int = DEFAULT_MAX_BODY
    max_concurrent_runs: int = DEFAULT_MAX_CONCURRENT_RUNS
    read_timeout: float = DEFAULT_READ_TIMEOUT
    webhooks: Mapping[str, Webhook] = field(default_factory=dict)
    public_url: str | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return self.public_url or f"http://{host}:{self.port}"


def parse_listen(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` as a host and a port; raises :class:`BadRequest`."""
    match = LISTEN.fullmatch(text.strip())
    if match is None or not 0 <= int(match.group(2)) <= 65535:
        raise BadRequest(f"'{text}' is not [HOST:]PORT (such as 127.0.0.1:8787 or 8787)")
    host = (match.group(1) or DEFAULT_HOST).strip("[]")
    return host, int(match.group(2))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_secret(reference: str, secrets: Mapping[str, str], where: str) -> bytes:
    """The value a ``${{ secrets.NAME }}`` reference names; raises :class:`BadRequest` when
    the workspace has no such secret (the message names the secret, never a value)."""
    match = SECRET_REF.fullmatch(reference.strip())
    if match is None:
        raise BadRequest(f"{where}: expected a secret reference such as ${{{{ secrets.NAME }}}}")
    value = secrets.get(match.group(1))
    if not value:
        raise BadRequest(f"{where}: the secret {match.group(1)} is not set (add it to the "
                         "workspace's .env, or name it in secrets.env)")
    return value.encode("utf-8")


def load_config(settings: Mapping[str, Any], secrets: Mapping[str, str],
                listen: str | None) -> ServerConfig:
    """The server's settings (``listen`` from ``--http`` wins over ``server.listen``);
    raises :class:`BadRequest` for a missing secret or a public address without tokens."""
    raw: Mapping[str, Any] = settings.get("server") or {}
    where = listen if listen is not None else raw.get("listen")
    if where is None:
        raise BadRequest("no address to serve HTTP on: pass --http [HOST:]PORT or set "
                         "server.listen in aios.yaml")
    host, port = parse_listen(str(where))
    tokens = tuple(resolve_secret(str(ref), secrets, f"server.tokens[{i}]")
                   for i, ref in enumerate(raw.get("tokens") or ()))
    if not tokens and not is_loopback(host):
        raise BadRequest(f"refusing to serve on {host} without API tokens: anyone who can "
                         "reach it could start runs and decide gates; create one with "
                         "`aiosrun token` and list it in server.tokens, or listen on "
                         "127.0.0.1")
    hooks = {}
    for source, spec in (raw.get("webhooks") or {}).items():
        refs = spec["secret"] if isinstance(spec["secret"], list) else [spec["secret"]]
        values = tuple(resolve_secret(str(ref), secrets, f"server.webhooks.{source}.secret")
                       for ref in refs)
        hooks[str(source)] = Webhook(str(source), str(spec["event"]), str(spec["verify"]),
                                     values, str(spec.get("header", "X-Signature-256")).lower(),
                                     spec.get("id"))
    timeout = parse_duration(str(raw.get("read_timeout", "10s")))
    return ServerConfig(host, port, tokens, int(raw.get("max_body", DEFAULT_MAX_BODY)),
                        int(raw.get("max_concurrent_runs", DEFAULT_MAX_CONCURRENT_RUNS)),
                        (timeout or 10_000) / 1000, hooks, raw.get("public_url"))
