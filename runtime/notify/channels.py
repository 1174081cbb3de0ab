"""The ``notify:`` list of ``aios.yaml``: where notifications go and which ones.

Each entry is one channel: ``email: ADDRESS`` (or a list) through the email adapter, or
``webhook: URL`` with ``format: json | slack | ntfy`` through the http adapter (so its host
must be in ``adapters.http.allow_hosts``); ``on:`` picks the triggers (all by default). A
channel's id is derived from what it names as written (a secret reference, never its value),
so reordering the list sends nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TRIGGERS = ("gate", "escalation", "run_failed", "needs_attention", "event_rejected", "budget")
FORMATS = ("json", "slack", "ntfy")


@dataclass(frozen=True)
class Channel:
    """One destination. ``target`` is the address(es) or the URL as written in aios.yaml
    (secret references unresolved)."""

    kind: str  # email | webhook
    target: tuple[str, ...]
    format: str = "json"
    on: tuple[str, ...] = TRIGGERS

    @property
    def id(self) -> str:
        if self.kind == "email":
            return "email:" + ",".join(self.target)
        digest = hashlib.sha256("\n".join(self.target).encode("utf-8")).hexdigest()[:12]
        return f"webhook:{self.format}:{digest}"


def channels_of(settings: Mapping[str, Any]) -> list[Channel]:
    """The channels of a validated ``aios.yaml`` (the schema has checked the shapes)."""
    out = []
    for entry in settings.get("notify") or ():
        on = tuple(entry.get("on") or TRIGGERS)
        if "email" in entry:
            to = entry["email"]
            out.append(Channel("email", tuple(to) if isinstance(to, list) else (str(to),),
                               on=on))
        else:
            out.append(Channel("webhook", (str(entry["webhook"]),),
                               str(entry.get("format", "json")), on))
    return out
