"""``aiosrun timeline``: a run's history as a causal tree.

Registered on the group in :mod:`cli`; heavy imports stay inside the command.
"""

from __future__ import annotations

import json
from typing import Any

import click
from aiosrun.runtime.cli.app import Context, cli
from aiosrun.runtime.cli.render import FORMAT, describe_model_call, session


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
    elif row.get("reused_from"):
        text += f": reused from run {row['reused_from']}"
    elif row.get("action"):
        text += f": {row['action']}"
    elif row.get("error_class"):
        text += f": {row['error_class']}: {row.get('message', '')}"
    return text


def _tree(node: dict[str, Any], into: Any) -> None:
    by = node["started_by"] or {}
    origin = {"event": f"started by event {by.get('event')} (seq {by.get('seq')})",
              "call": f"started by {by.get('run')} step {by.get('step')}",
              "schedule": f"started by schedule {by.get('schedule')} ({by.get('slot')})",
              "operator": "started by the operator",
              "fork": f"forked from run {by.get('run')} "
                      + (f"at step {by.get('step')}" if by.get("step")
                         else f"at seq {by.get('seq')}")}.get(by.get("kind", ""), "")
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

    tree = session(obj, lambda engine: engine.timeline(run_id)).to_json()
    if fmt == "json":
        click.echo(json.dumps(tree, indent=2, ensure_ascii=False))
        return
    root = Tree("timeline")
    _tree(tree, root)
    import sys

    width = None if sys.stdout.isatty() else 400  # a pipe or a file gets whole lines
    Console(highlight=False, soft_wrap=True, width=width).print(root)
