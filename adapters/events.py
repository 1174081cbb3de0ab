"""``events``: ``events.emit`` appends an event, like an ``emit:`` step (once per key)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .base import Action, Adapter, CallContext, PermanentError


class EventsAdapter(Adapter):
    name = "events"
    description = "Append events that wake waiting runs and trigger playbooks."
    actions: ClassVar[Mapping[str, Action]] = {
        "emit": Action("Appends an event.", {
            "type": "object", "required": ["event"], "additionalProperties": False,
            "properties": {"event": {"type": "string",
                                     "pattern": r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"},
                           "data": {}}}),
    }

    async def call(self, action: str, args: Mapping[str, Any],
                   ctx: CallContext) -> Mapping[str, Any]:
        if ctx.emit is None:
            raise PermanentError("events.emit needs the runtime's event log")
        seq = ctx.emit(str(args["event"]), args.get("data"), ctx.idempotency_key)
        return {"event": args["event"], "seq": seq}
