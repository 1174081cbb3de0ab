"""``aiosrun timeline``: a run's history as a causal tree.

Registered on the group in :mod:`cli`; heavy imports stay inside the command.
"""

from __future__ import annotations

import json
from typing import Any

import click
from aiosrun.runtime.cli.app import Context, cli
from aiosrun.runtime.cli.runs import (
    FORMAT,
    _load_run,
    open_workspace,
)


def timeline_of(ws: Any, run_id: str, origin: Any = None) -> dict[str, Any]:
    """One run's history as a tree: what started it, its events with times and step
    durations, and its child runs nested under the steps that called them."""
    import datetime as dt

    def moment(ts: str) -> dt.datetime:
        return dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")

    records = list(ws.log.read_run(run_id))
    start = origin or (moment(records[0].ts) if records else dt.datetime.now())
    first = records[0] if records else None
    started_by: dict[str, Any] | None = None
    if first is not None and first.type == "RunStarted":
        data = first.data
        if data.get("parent"):
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
        path = record.data.get("path")
        duration = None
        if record.type == "StepStarted" and path not in opened:
            opened[path] = at
        elif record.type in ("StepSucceeded", "StepFailed") and path in opened:
            duration = (at - opened[path]).total_seconds()
        row = {"seq": record.seq, "at": (at - start).total_seconds(), "type": record.type,
               "path": path, "duration": duration, "attempt": record.data.get("attempt"),
               "cause": record.cause}
        for key in ("decision", "comment", "by", "error_class", "message", "action", "gate",
                    *MODEL_FIELDS):
            if record.data.get(key) is not None:
                row[key] = record.data[key]
        if record.type == "WaitSatisfied" and record.data.get("event"):
            row["event"] = {key: record.data.get(key) for key in ("event", "id", "seq")
                            if record.data.get(key) is not None}
        rows.append(row)
    children = [timeline_of(ws, child.id, start)
                for child in ws.workspace_state().runs.values() if child.parent == run_id]
    return {"run": run_id, "started_by": started_by, "events": rows, "children": children}


MODEL_FIELDS = ("tier", "alias", "model", "input_tokens", "output_tokens", "cost_usd",
                "latency_ms", "cached", "accepted", "error")


def describe_model_call(data: dict[str, Any]) -> str:
    """``tier 1 small (gpt-4o-mini): 812+95 tokens, $0.000179, 640 ms, not accepted``."""
    text = (f"tier {data.get('tier')} {data.get('alias')} ({data.get('model')}): "
            f"{data.get('input_tokens', 0)}+{data.get('output_tokens', 0)} tokens, "
            f"${float(data.get('cost_usd') or 0):.6f}")
    if data.get("cached"):
        text += ", from the cache"
    elif data.get("latency_ms") is not None:
        text += f", {float(data['latency_ms']):.0f} ms"
    if data.get("error"):
        return text + f", failed: {data['error']}"
    return text + (", accepted" if data.get("accepted") else ", not accepted")


def _describe(row: dict[str, Any]) -> str:
    kind = row["type"]
    if kind == "ModelCalled":
        return f"+{row['at']:.3f}s ModelCalled {describe_model_call(row)}"
    text = f"+{row['at']:.3f}s {kind}"
    if row.get("path"):
        text += f" {row['path']}"
    if row.get("attempt"):
        text += f" (attempt {row['attempt']})"
    if row.get("duration") is not None:
        text += f" in {row['duration']:.3f}s"
    if row.get("decision"):
        text += f": {row['decision']} by {row.get('by')}"
        if row.get("comment"):
            text += f" ({row['comment']})"
    elif row.get("action"):
        text += f": {row['action']}"
    elif row.get("event"):
        event = row["event"]
        text += f": event {event['event']} (seq {event.get('seq')}"
        text += f", id {event['id']})" if event.get("id") else ")"
    elif row.get("error_class"):
        text += f": {row['error_class']}: {row.get('message', '')}"
    return text


def _tree(node: dict[str, Any], into: Any) -> None:
    by = node["started_by"] or {}
    origin = {"event": f"started by event {by.get('event')} (seq {by.get('seq')})",
              "call": f"started by {by.get('run')} step {by.get('step')}",
              "schedule": f"started by schedule {by.get('schedule')} ({by.get('slot')})",
              "operator": "started by the operator"}.get(by.get("kind", ""), "")
    branch = into.add(f"[bold]run {node['run']}[/] {origin}")
    steps: dict[str, Any] = {}
    calls = {child["started_by"]["step"]: child for child in node["children"]}
    for row in node["events"]:
        path = row.get("path")
        if path and (row["type"].startswith("Step") or row["type"] == "ModelCalled"):
            if path not in steps:
                steps[path] = branch.add(_describe(row))
                if path in calls:
                    _tree(calls.pop(path), steps[path])
            else:
                steps[path].add(_describe(row))
        else:
            branch.add(_describe(row))
    for child in calls.values():
        _tree(child, branch)


@cli.command()
@click.argument("run_id")
@FORMAT
@click.pass_obj
def timeline(obj: Context, run_id: str, fmt: str) -> None:
    """The run's history as a tree with times: what started it, each step with its attempts
    and duration, gate decisions, and child runs under the steps that called them."""
    from rich.console import Console
    from rich.tree import Tree

    ws = open_workspace(obj)
    with ws:
        _load_run(ws, run_id)
        tree = timeline_of(ws, run_id)
    if fmt == "json":
        click.echo(json.dumps(tree, indent=2, ensure_ascii=False))
        return
    root = Tree("timeline")
    _tree(tree, root)
    import sys

    width = None if sys.stdout.isatty() else 400  # a pipe or a file gets whole lines
    Console(highlight=False, soft_wrap=True, width=width).print(root)
