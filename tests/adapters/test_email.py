"""email: the outbox without SMTP settings, a real SMTP server (aiosmtpd) with them; once per
idempotency key either way."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from aiosrun.adapters.base import TransientError
from aiosrun.adapters.email import EmailAdapter

from .conftest import call

email = EmailAdapter()
MESSAGE = {"to": "ada@example.com", "subject": "Welcome", "body": "Hello Ada"}


def test_outbox_once_per_key(tmp_path: Path) -> None:
    first = call(email, "send", MESSAGE, tmp_path, "welcome-ada")
    again = call(email, "send", MESSAGE, tmp_path, "welcome-ada")
    assert first == again
    (eml,) = (tmp_path / ".aios" / "outbox").glob("*.eml")
    parsed = message_from_bytes(eml.read_bytes())
    assert parsed["To"] == "ada@example.com" and parsed["Message-ID"] == first["message_id"]
    call(email, "send", {**MESSAGE, "cc": ["b@example.com", "c@example.com"]}, tmp_path, "other")
    assert len(list((tmp_path / ".aios" / "outbox").glob("*.eml"))) == 2


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.messages.append((envelope, message_from_bytes(envelope.content)))  # type: ignore[arg-type]
        return "250 OK"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"app-password"
    return AuthResult(success=ok)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_smtp_delivery_once_per_key(tmp_path: Path, smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    settings = {"from": "me@example.com",
                "smtp": {"host": "127.0.0.1", "port": port, "starttls": False,
                         "username": "me", "password": "${{ secrets.SMTP_PASSWORD }}"}}
    secrets = {"SMTP_PASSWORD": "app-password"}
    first = call(email, "send", MESSAGE, tmp_path, "k", settings=settings, secrets=secrets)
    call(email, "send", MESSAGE, tmp_path, "k", settings=settings, secrets=secrets)
    assert len(inbox.messages) == 1
    envelope, parsed = inbox.messages[0]
    assert envelope.rcpt_tos == ["ada@example.com"] and envelope.mail_from == "me@example.com"
    assert parsed["Message-ID"] == first["message_id"] and parsed["Subject"] == "Welcome"
    assert not (tmp_path / ".aios" / "outbox").exists()


def test_smtp_unreachable_is_transient(tmp_path: Path) -> None:
    settings = {"smtp": {"host": "127.0.0.1", "port": free_port(), "starttls": False,
                         "timeout": "2s"}}
    with pytest.raises(TransientError):
        call(email, "send", MESSAGE, tmp_path, "k", settings=settings)
