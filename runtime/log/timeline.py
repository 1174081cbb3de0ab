"""A run's timeline: its records as a causal tree with times, durations and model costs.

A projection like the others: built from the run's records (and its child runs') alone, so
the CLI, the HTTP API and the operator's page show the same history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from aiosrun.runtime.log.eventlog import Record

MODEL_FIELDS = ("tier", "alias", "model", "input_tokens", "output_tokens", "cost_usd",
                "latency_ms", "cached", "accepted", "error", "turn")



def timeline_of(records_of: Callable[[str], Iterable[Record]],
                children_of: Callable[[str], Iterable[str]], run_id: str,
                origin: dt.datetime | None = None) -> dict[str, Any]:
    """One run's history as a tree: what started it, its events with times and step
    durations, and its child runs nested under the steps that called them."""

    def moment(ts: str) -> dt.datetime:
        return dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")

    records = list(records_of(run_id))
    start = origin or (moment(records[0].ts) if records else dt.datetime.now())
    first = records[0] if records else None
    started_by: dict[str, Any] | None = None
    if first is not None and first.type == "RunStarted":
        data = first.data
        if data.get("forked_from"):
            started_by = {"kind": "fork", **data["forked_from"]}
        elif data.get("parent"):
            started_by = {"kind": "call", "run": data["parent"], "step": data["parent_step"],
                          "seq": first.cause}
        elif isinstance(data.get("trigger"), dict) and "schedule" in data["trigger"]:
            started_by = {"kind": "schedule", **data["trigger"]}
        elif data.get("trigger"):
            started_by = {"kind": "event", "event": data["trigger"].get("name"),
                          "seq": first.cause}
        else:
            started_by = {"kind": "operator"}
    opened: dict[str, dt.datetime] = {}
    rows = []
    for record in records:
        at = moment(record.ts)
        path: Any = record.data.get("path")
        duration = None
        if record.type == "StepStarted" and path not in opened:
            opened[path] = at
        elif record.type in ("StepSucceeded", "StepFailed") and path in opened:
            duration = (at - opened[path]).total_seconds()
        row = {"seq": record.seq, "at": (at - start).total_seconds(), "type": record.type,
               "path": path, "duration": duration, "attempt": record.data.get("attempt"),
               "cause": record.cause}
        for key in ("decision", "comment", "by", "error_class", "message", "action", "gate",
                    "reused_from",
                    *MODEL_FIELDS):
            if record.data.get(key) is not None:
                row[key] = record.data[key]
        output = record.data.get("output")
        if record.type == "ModelCalled" and record.data.get("turn") is not None \
                and isinstance(output, dict):  # an agent's turn: the tools it asked for
            row["tool_calls"] = [str(c.get("name")) for c in output.get("tool_calls") or ()
                                 if isinstance(c, dict)]
        if record.type == "WaitSatisfied" and record.data.get("event"):
            row["event"] = {key: record.data.get(key) for key in ("event", "id", "seq")
                            if record.data.get(key) is not None}
        rows.append(row)
    children = [timeline_of(records_of, children_of, child, start)
                for child in children_of(run_id)]
    return {"run": run_id, "started_by": started_by, "events": rows, "children": children}
