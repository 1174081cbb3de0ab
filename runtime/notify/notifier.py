"""Following the log from ``serve`` and sending each notification once.

Delivery is recorded as ``NotificationSent`` (workspace-level, keyed by channel and item) in
the log after the adapter answers, so a restarted ``serve`` reads the record and sends
nothing again; ``.aios/notify.cursor`` only says how far the log was read (first start: from
the end, so enabling ``notify:`` does not replay the past). The narrow window between a
delivery and its record is covered by the adapters' own keys: the email adapter's ledger
and ``Message-ID``, the http adapter's ``Idempotency-Key`` (the same on a retry).

On a shared store (PostgreSQL, several ``serve`` workers, each with its own cursor) a
notification is claimed before it is sent: a lease named ``notify:CHANNEL KEY`` in the store,
held by one worker at a time and renewed by its heartbeat. The holder reads the log again
under the claim (another worker may have recorded it meanwhile), sends, and records
``NotificationSent`` with a guard (never a second record). A worker that dies between
sending and recording loses its claim after ``lease_timeout`` and another sends it again,
with the same delivery id (``Idempotency-Key``, ``Message-ID``): at least once, recorded
once (docs/decisions.md).

A transient failure is tried again each round, up to :data:`MAX_ATTEMPTS`; then, or on a
permanent failure, ``NotificationFailed`` is recorded with the (masked) reason and ``serve``
says it. Notifications never hold up runs: they are sent from their own task.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import trio
from aiosrun.adapters.base import CallContext, PermanentError, resolve_secrets
from aiosrun.runtime.log.eventlog import NewEvent, Record
from aiosrun.runtime.log.store import RunLease, Tail
from aiosrun.runtime.workspace import Workspace

from .channels import Channel, channels_of
from .messages import TOLD, Notification, budget_notification, notification_for

MAX_ATTEMPTS = 5
SEND_TIMEOUT = 60.0
BUDGET_SHARE = 0.8
CURSOR = "notify.cursor"
CHILD_REPORTED = frozenset({"RunFailed", "RunCompensating", "RunNeedsAttention"})


class Notifier:
    def __init__(self, ws: Workspace, say: Callable[[str], None]) -> None:
        self.ws = ws
        self.say = say
        self.channels = channels_of(ws.settings.data)
        server = ws.settings.data.get("server") or {}
        base = server.get("public_url")
        if base is None and server.get("listen") is not None:
            listen = str(server["listen"])
            base = f"http://{listen if ':' in listen else '127.0.0.1:' + listen}"
        self.base: str | None = base
        self.cursor_file = ws.state_dir / CURSOR
        self.sent: set[str] = set()  # channel id + " " + notification key
        self.budget_sent: set[str] = set()  # budget keys told before the cursor
        self.pending: dict[str, tuple[int, Notification]] = {}  # key -> (record seq, what)
        self.attempts: dict[str, int] = {}
        self.tail: Tail | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.channels)

    # ---- the cursor -----------------------------------------------------------------------

    def _open(self) -> None:
        start = self.ws.log.last_seq
        try:
            saved = json.loads(self.cursor_file.read_text("utf-8"))
            start = int(saved["seq"])
            self.budget_sent = {str(k) for k in saved.get("budget", ())}
        except (OSError, ValueError, KeyError, TypeError):
            self._save(start)
        self.tail = self.ws.store.tail(start)
        self.read_until = start

    def _save(self, seq: int) -> None:
        keep = sorted(k.split(" ", 1)[1] for k in self.sent if " budget:" in k)
        body = json.dumps({"seq": seq, "budget": sorted(set(keep) | self.budget_sent)[-64:]})
        temporary = self.cursor_file.with_suffix(".tmp")
        self.cursor_file.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(body, "utf-8")
        os.replace(temporary, self.cursor_file)

    # ---- one round ------------------------------------------------------------------------

    async def round(self) -> None:
        """Read what the log gained, send what it calls for, advance the cursor."""
        if not self.enabled:
            return
        if self.tail is None:
            self._open()
        self._catch_up()
        self._budget()
        for key, (_seq, note) in sorted(self.pending.items(), key=lambda kv: kv[1][0]):
            await self._deliver(key, note)
        settled = [seq for seq, _ in self.pending.values() if seq > 0]
        self._save(min(settled) - 1 if settled else self.read_until)

    def _catch_up(self) -> None:
        assert self.tail is not None
        while records := self.tail.poll():
            for record in records:
                self._read(record)
                self.read_until = record.seq

    def _read(self, record: Record) -> None:
        if record.type in ("NotificationSent", "NotificationFailed"):
            key = f"{record.data.get('channel')} {record.data.get('key')}"
            self.sent.add(key)
            self.pending.pop(key, None)
            return
        if record.type not in TOLD:
            return
        if record.type in CHILD_REPORTED and record.run is not None:
            summary = self.ws.workspace_state().runs.get(record.run)
            if summary is not None and summary.parent is not None:
                return  # a child run's failure is its parent's: told once, there
        note = notification_for(record.type, record.seq, record.run, record.data,
                                self._playbook_of, self.base)
        if note is None:
            return
        for channel in self.channels:
            key = f"{channel.id} {note.key}"
            if note.trigger in channel.on and key not in self.sent:
                self.pending[key] = (record.seq, note)

    def _playbook_of(self, run: str) -> str | None:
        summary = self.ws.workspace_state().runs.get(run)
        return None if summary is None else str(summary.playbook)

    def _budget(self) -> None:
        budget = (self.ws.settings.data.get("policy") or {}).get("budget") or {}
        if not budget:
            return
        spend = self.ws.workspace_state().spend
        today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
        for period, when, spent in (
                ("daily", today, spend.get(today, 0.0)),
                ("monthly", today[:7], sum(v for d, v in spend.items()
                                           if d.startswith(today[:7])))):
            limit = budget.get(f"{period}_usd")
            if limit is None or spent < BUDGET_SHARE * float(limit):
                continue
            note = budget_notification(period, when, spent, float(limit), self.base)
            if note.key in self.budget_sent:
                continue
            for channel in self.channels:
                key = f"{channel.id} {note.key}"
                if "budget" in channel.on and key not in self.sent:
                    self.pending.setdefault(key, (0, note))

    def _still_relevant(self, note: Notification) -> bool:
        """A gate or escalation settled before it was told needs no notification."""
        if note.trigger not in ("gate", "escalation") or note.run is None:
            return True
        state = self.ws.run_state(note.run)
        gate = state.gates.get(note.item or "")
        if gate is not None:
            return gate.decision is None
        escalation = state.escalations.get(note.item or "")
        return escalation is not None and escalation.action is None

    async def _deliver(self, key: str, note: Notification) -> None:
        channel_id = key.split(" ", 1)[0]
        channel = next(c for c in self.channels if c.id == channel_id)
        if not self._still_relevant(note):
            self.pending.pop(key, None)
            return
        claim = self._claim(key)
        if claim is False:
            return  # another worker is sending it: still pending here, looked at next round
        try:
            await self._attempt(key, channel, note)
        finally:
            if claim is not True:
                claim.release()

    def _claim(self, key: str) -> RunLease | bool:
        """On a shared store: the claim on ``key`` (False when another worker holds it or
        has recorded it meanwhile); True where one ``serve`` is all there is."""
        if not self.ws.store.shared:
            return True
        claim = self.ws.store.lease(f"notify:{key}")
        if not claim.try_acquire():
            claim.close()
            return False
        self._catch_up()  # what the previous holder recorded before it let the claim go
        if key in self.sent:
            claim.release()
            return False
        return claim

    async def _attempt(self, key: str, channel: Channel, note: Notification) -> None:
        try:
            with trio.fail_after(SEND_TIMEOUT):
                await self._send(channel, note, key)
        except Exception as exc:  # an adapter's failure: told, retried, never fatal
            reason = self.ws.masker.text(f"{type(exc).__name__}: {exc}" if not isinstance(
                exc, PermanentError) else str(exc))
            tries = self.attempts[key] = self.attempts.get(key, 0) + 1
            given_up = isinstance(exc, PermanentError) or tries >= MAX_ATTEMPTS
            if given_up and self._record("NotificationFailed", channel, note, error=reason,
                                         attempts=tries):
                self.say(f"notification {note.key} to {channel.id} failed: {reason}")
            return
        self._record("NotificationSent", channel, note)

    def _record(self, kind: str, channel: Channel, note: Notification, **extra: Any) -> bool:
        """Record the outcome; on a shared store only when no worker has recorded one for
        ``key`` yet (one whose claim lapsed while it sent, say). Whether it recorded."""
        key = f"{channel.id} {note.key}"
        event = NewEvent(kind, self.ws.masker.data({
            "channel": channel.id, "key": note.key, "trigger": note.trigger, "run": note.run,
            "title": note.title, **extra}))

        def unrecorded() -> bool:
            self._catch_up()
            return key not in self.sent

        if self.ws.store.shared:
            recorded = bool(self.ws.log.append_many([event], guard=unrecorded))
        else:
            self.ws.log.append(event)
            recorded = True
        self.ws.log.sync()
        self.sent.add(key)
        self.pending.pop(key, None)
        return recorded

    async def _send(self, channel: Channel, note: Notification, key: str) -> None:
        mask = self.ws.masker.text
        safe = Notification(note.key, note.trigger, mask(note.title), mask(note.text),
                            note.link, note.run, note.playbook, note.item)
        if channel.kind == "email":
            adapter, action = self.ws.registry.adapters["email"], "send"
            body = safe.text + (f"\n\nOpen: {safe.link}\n" if safe.link else "\n")
            args: dict[str, Any] = {"to": list(channel.target), "subject": safe.title,
                                    "body": body}
            settings = self.ws.settings.adapter("email")
        else:
            adapter, action = self.ws.registry.adapters["http"], "request"
            url = resolve_secrets(channel.target[0], self.ws.secrets)
            args = webhook_request(channel.format, url, safe)
            settings = self.ws.settings.adapter("http")
        ctx = CallContext(f"notify:{key}", note.run or "", "notify", "notify", 1,
                          self.ws.root, self.ws.state_dir, settings, self.ws.secrets,
                          mask=mask, journal=self.ws.store.journal)  # the ledger all share
        await adapter.call(action, args, ctx)


def webhook_request(fmt: str, url: str, note: Notification) -> dict[str, Any]:
    """The http adapter's arguments for one notification in a webhook ``format``."""
    if fmt == "slack":
        def esc(text: str) -> str:
            return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

        text = f"*{esc(note.title)}*\n{esc(note.text)}"
        if note.link:
            text += f"\n<{note.link}|Open in aiosrun>"
        return {"method": "POST", "url": url, "json": {"text": text}}
    if fmt == "ntfy":  # JSON publishing: POST to the server's root, the topic in the body
        parts = urlsplit(url)
        topic = parts.path.strip("/").split("/")[-1]
        root = urlunsplit((parts.scheme, parts.netloc, "/", "", ""))
        body: dict[str, Any] = {"topic": topic, "title": note.title, "message": note.text,
                                "tags": [note.trigger]}
        if note.trigger in ("gate", "escalation", "needs_attention"):
            body["priority"] = 4
        if note.link:
            body["click"] = note.link
        return {"method": "POST", "url": root, "json": body}
    return {"method": "POST", "url": url, "json": note.to_json()}

