"""Inbound webhooks: proving who sent a delivery, and what event it becomes.

Each scheme verifies the raw body, byte for byte as it arrived, in constant time, against
every secret configured for the source (two while a key is rotated):

- ``standard``: Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature``), through the ``standardwebhooks`` package;
- ``github``: ``X-Hub-Signature-256: sha256=HEX``;
- ``stripe``: ``Stripe-Signature: t=TS,v1=HEX[,v1=HEX]`` over ``TS.BODY``;
- ``hmac-sha256``: a hex HMAC of the body in a named header.

Schemes with a timestamp refuse one more than :data:`TOLERANCE` seconds away from now, so
a captured delivery cannot be replayed later. The delivery id becomes the event id
(``SOURCE:ID``), which is what makes a redelivery start nothing twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiosrun.dsl.errors import ExpressionError
from aiosrun.dsl.render import render_template

from .config import Webhook
from .responses import ApiError

TOLERANCE = 5 * 60  # seconds
DEFAULT_IDS = {"standard": "${{ headers['webhook-id'] }}",
               "github": "${{ headers['x-github-delivery'] }}",
               "stripe": "${{ body.id }}",
               "hmac-sha256": "${{ headers['x-delivery-id'] }}"}
MAX_ID = 200


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: the event to record, its id and its payload."""

    event: str
    id: str
    data: Any


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "bad_signature", message)


def verify(hook: Webhook, raw: bytes, headers: Mapping[str, str],
           now: float | None = None) -> None:
    """Raise :class:`ApiError` (401) unless ``raw`` was signed with one of the secrets."""
    moment = time.time() if now is None else now
    if hook.verify == "standard":
        _standard(hook, raw, headers)
    elif hook.verify == "github":
        given = headers.get("x-hub-signature-256")
        if given is None:
            raise unauthorized("missing X-Hub-Signature-256")
        _any_matches(hook, raw, given.removeprefix("sha256="), "X-Hub-Signature-256")
    elif hook.verify == "stripe":
        _stripe(hook, raw, headers.get("stripe-signature"), moment)
    else:
        given = headers.get(hook.header)
        if given is None:
            raise unauthorized(f"missing {hook.header}")
        _any_matches(hook, raw, given.removeprefix("sha256="), hook.header)


def _hex(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _any_matches(hook: Webhook, message: bytes, given: str, header: str) -> None:
    found = False
    for secret in hook.secrets:  # every secret is tried: no early exit to time
        found |= hmac.compare_digest(_hex(secret, message).encode(), given.strip().encode())
    if not found:
        raise unauthorized(f"{header} does not match the body signed with the secret of "
                           f"source '{hook.source}'")


def _standard(hook: Webhook, raw: bytes, headers: Mapping[str, str]) -> None:
    from standardwebhooks.webhooks import Webhook as StandardWebhook
    from standardwebhooks.webhooks import WebhookVerificationError

    problem = "no webhook secret"
    for secret in hook.secrets:
        try:
            StandardWebhook(secret.decode("utf-8")).verify(raw, dict(headers), json_parse=False)
            return
        except WebhookVerificationError as exc:
            problem = str(exc)
        except (ValueError, UnicodeDecodeError):  # a malformed signature header or body
            problem = "malformed webhook-signature"
    raise unauthorized(f"Standard Webhooks verification failed: {problem}")


def _stripe(hook: Webhook, raw: bytes, header: str | None, now: float) -> None:
    if header is None:
        raise unauthorized("missing Stripe-Signature")
    stamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            stamp = value
        elif key == "v1":
            signatures.append(value)
    if stamp is None or not stamp.isdigit() or not signatures:
        raise unauthorized("malformed Stripe-Signature (expected t=TIMESTAMP,v1=SIGNATURE)")
    if abs(now - int(stamp)) > TOLERANCE:
        raise unauthorized(f"Stripe-Signature timestamp is more than {TOLERANCE // 60} "
                           "minutes away from now: refused as a possible replay")
    message = stamp.encode() + b"." + raw
    found = False
    for secret in hook.secrets:
        expected = _hex(secret, message).encode()
        for given in signatures:
            found |= hmac.compare_digest(expected, given.encode())
    if not found:
        raise unauthorized("no v1 signature of Stripe-Signature matches the body")


def payload(raw: bytes, content_type: str) -> Any:
    """The delivery's body as data: JSON, or form fields; 400 for anything else."""
    if not raw.strip():
        return {}
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise ApiError(400, "malformed", "the form body is not UTF-8") from None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed", f"the webhook body is not JSON: {exc}") from None


def delivery(hook: Webhook, raw: bytes, headers: Mapping[str, str], event_name: Any) -> Delivery:
    """What a verified delivery records: the event (a name, or the ``event:`` expression
    over ``body`` and ``headers``), its id and its payload."""
    body = payload(raw, headers.get("content-type", ""))
    contexts = {"body": body, "headers": dict(headers)}
    event = _render(hook.event, contexts, "event")
    if not isinstance(event, str) or not event_name.fullmatch(event):
        raise ApiError(422, "bad_event", f"the event of source '{hook.source}' came out as "
                       f"{json.dumps(event)}, which is not an event name (dot-separated "
                       "words)")
    reference = hook.id or DEFAULT_IDS[hook.verify]
    found = _render(reference, contexts, "id")
    if found in (None, ""):
        if hook.id is not None or hook.verify != "hmac-sha256":
            raise ApiError(400, "no_delivery_id", f"the delivery has no id ({reference} is "
                           "empty): without one a redelivery could not be recognised")
        found = "sha256-" + hashlib.sha256(raw).hexdigest()
    ident = str(found)
    if len(ident) > MAX_ID:
        raise ApiError(400, "no_delivery_id", f"the delivery id is over {MAX_ID} characters")
    return Delivery(event, f"{hook.source}:{ident}", body)


def _render(template: str, contexts: Mapping[str, Any], what: str) -> Any:
    try:
        return render_template(template, contexts)
    except ExpressionError as exc:
        raise ApiError(422, "bad_event", f"the {what} expression failed on this delivery: "
                       f"{exc}") from None
