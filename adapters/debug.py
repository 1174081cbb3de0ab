"""``debug``: actions for trying playbooks out and for tests (echo, sleep, fail on demand)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .base import ERROR_CLASSES, Action, Adapter, CallContext, PermanentError, RateLimited


class DebugAdapter(Adapter):
    name = "debug"
    description = "Echo values, sleep and fail on purpose, to try playbooks out."
    actions: ClassVar[Mapping[str, Action]] = {
        "echo": Action("Returns its value.", {"type": "object", "properties": {"value": {}},
                                              "additionalProperties": False}),
        "sleep": Action("Sleeps, then returns how long.",
                        {"type": "object", "required": ["seconds"],
                         "properties": {"seconds": {"type": "number", "minimum": 0}},
                         "additionalProperties": False}),
        "fail": Action(
            "Fails the first `times` attempts of this step with the given error class, then "
            "returns its value.",
            {"type": "object", "required": ["times"], "additionalProperties": False,
             "properties": {"times": {"type": "integer", "minimum": 0},
                            "error": {"enum": sorted(ERROR_CLASSES)}, "value": {}}}),
    }

    async def call(self, action: str, args: Mapping[str, Any],
                   ctx: CallContext) -> Mapping[str, Any]:
        if action == "echo":
            return {"value": args.get("value")}
        if action == "sleep":
            import trio  # here, not at import: `aiosrun validate` loads adapters to check them

            seconds = float(args["seconds"])
            if not 0 <= seconds < 10**9:  # NaN and infinities too
                raise PermanentError(f"debug.sleep: seconds must be a number from 0 to 1e9, "
                                     f"got {args['seconds']}")
            await trio.sleep(seconds)
            return {"slept": args["seconds"]}
        if ctx.attempt <= int(args["times"]):
            kind = ERROR_CLASSES[args.get("error", "transient")]
            message = f"debug.fail: attempt {ctx.attempt} of {args['times']} failing on purpose"
            raise RateLimited(message, 0.0) if kind is RateLimited else kind(message)
        return {"value": args.get("value")}
