"""``email``: sends mail once per idempotency key, over SMTP or into the workspace outbox.

Without ``adapters.email.smtp`` settings a message is written to ``.aios/outbox/`` as an
``.eml`` file named by its key, so a retry finds it and sends nothing new. Over SMTP
(STARTTLS and login by default; the password may be a ``${{ secrets.NAME }}`` reference)
the effects ledger skips keys already sent. SMTP cannot make a delivery idempotent: after a
crash between handing the message over and recording it, it is sent again with the same
``Message-ID`` (derived from the key), which mail systems use to drop the duplicate.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, ClassVar

from .base import (
    Action,
    Adapter,
    CallContext,
    PermanentError,
    TransientError,
    resolve_secrets,
)
from .effects import EffectsLedger, journal

_ADDRESSES = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}


class EmailAdapter(Adapter):
    name = "email"
    description = "Email over SMTP, or into the outbox when no SMTP server is set."
    actions: ClassVar[Mapping[str, Action]] = {
        "send": Action(
            "Sends one message, once per idempotency key.",
            {"type": "object", "required": ["to", "subject", "body"],
             "additionalProperties": False,
             "properties": {"to": _ADDRESSES, "subject": {"type": "string"},
                            "body": {"type": "string"}, "cc": _ADDRESSES,
                            "reply_to": {"type": "string"}}},
            result={"type": "object", "properties": {"message_id": {"type": "string"}}}),
    }

    async def call(self, action: str, args: Mapping[str, Any],
                   ctx: CallContext) -> Mapping[str, Any]:
        digest = hashlib.sha256(ctx.idempotency_key.encode("utf-8")).hexdigest()[:24]
        message_id = f"<{digest}@aiosrun>"
        for field in ("to", "cc", "reply_to", "subject"):
            if any(ch in _join(args.get(field) or "") for ch in "\r\n"):
                raise PermanentError(f"email.send: '{field}' must be one line (it holds a line "
                                     "break, which would let it add mail headers)")
        smtp = ctx.settings.get("smtp")
        if not smtp:  # the outbox is kept in .aios/, where secrets never go
            args = {k: [ctx.mask(str(a)) for a in v] if isinstance(v, list) else ctx.mask(str(v))
                    for k, v in args.items()}
        message = EmailMessage()
        message["Message-ID"] = message_id
        message["From"] = str(ctx.settings.get("from", "aiosrun@localhost"))
        message["To"] = _join(args["to"])
        if args.get("cc"):
            message["Cc"] = _join(args["cc"])
        if args.get("reply_to"):
            message["Reply-To"] = str(args["reply_to"])
        message["Subject"] = str(args["subject"])
        message["Date"] = formatdate(usegmt=True)
        message.set_content(str(args["body"]))
        if not smtp:
            outbox = ctx.state_dir / "outbox"
            outbox.mkdir(parents=True, exist_ok=True)
            target = outbox / f"{digest}.eml"
            if not target.exists():
                temporary = target.with_suffix(".tmp")
                temporary.write_bytes(bytes(message))
                temporary.replace(target)
            return {"message_id": message_id}
        with EffectsLedger(journal(ctx, "effects/email")) as ledger:
            done = ledger.done(ctx.idempotency_key)
            if done is not None:
                return done
            ledger.record(ctx.idempotency_key, "intent", message_id=message_id)
            import trio

            await trio.to_thread.run_sync(_deliver, dict(smtp), ctx.secrets, message)
            result = {"message_id": message_id}
            ledger.record(ctx.idempotency_key, "done", result=result)
            return result


def _join(addresses: Any) -> str:
    return ", ".join(addresses) if isinstance(addresses, list) else str(addresses)



def _login(client: smtplib.SMTP, user: str, password: str) -> None:
    """PLAIN when offered, so refused credentials fail at once (smtplib's fall-through to
    another mechanism after a refusal can stall until the timeout)."""
    client.ehlo_or_helo_if_needed()
    if "PLAIN" in client.esmtp_features.get("auth", "").upper().split():
        client.user, client.password = user, password
        client.auth("PLAIN", client.auth_plain)
    else:
        client.login(user, password)


def _deliver(smtp: dict[str, Any], secrets: Mapping[str, str], message: EmailMessage) -> None:
    host = str(smtp["host"])
    try:
        port = int(resolve_secrets(str(smtp.get("port", 465 if smtp.get("ssl") else 587)),
                                   secrets))
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise PermanentError("adapters.email.smtp.port must be a port number (1-65535)")
    from aiosrun.dsl.durations import parse_duration

    timeout = (parse_duration(str(smtp.get("timeout", "30s"))) or 30_000) / 1000
    try:
        if smtp.get("ssl"):
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            if not smtp.get("ssl") and smtp.get("starttls", True):
                client.starttls(context=ssl.create_default_context())
            if smtp.get("username"):
                _login(client, resolve_secrets(smtp["username"], secrets),
                       resolve_secrets(smtp.get("password", ""), secrets))
            client.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise PermanentError(f"SMTP login refused by {host}: {exc.smtp_code}") from None
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
        raise PermanentError(f"SMTP server {host} refused the message: {exc}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise TransientError(f"SMTP server {host}:{port}: {exc}") from None
