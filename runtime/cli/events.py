"""CLI commands for events and the long-running server: emit, serve.

Registered on the group in :mod:`cli`; heavy imports stay inside the commands.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from aiosrun.runtime.cli.app import Context, cli, fail
from aiosrun.runtime.cli.parsing import Interval, json_option
from aiosrun.runtime.cli.runs import (
    FORMAT,
    dispatch_events,
    open_workspace,
    run_object,
    serve_running,
)


@cli.command("emit")
@click.argument("event")
@click.option("--data", "data_text", metavar="JSON|@FILE", help="The payload: JSON, or @file.")
@FORMAT
@click.pass_obj
def emit_command(obj: Context, event: str, data_text: str | None, fmt: str) -> None:
    """Record an event; wake the runs waiting for it and start the playbooks it triggers."""
    import re

    from aiosrun.runtime.coordinator.dispatch import emit

    if not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", event):
        raise click.BadParameter("an event name is dot-separated words, such as "
                                 "customer.signed_up", param_hint="EVENT")
    data: Any = None
    if data_text is not None:
        data = json_option(data_text, "--data")
    ws = open_workspace(obj)
    with ws:
        record = emit(ws, event, data, {"cli": True})
        if serve_running(ws):
            click.echo(f"event {event} recorded (seq {record.seq}); serve dispatches it",
                       err=True)
            return
        runs_started = dispatch_events(ws, fmt)
        ws.save_workspace_snapshot()
    if fmt == "json":
        click.echo(json.dumps({"seq": record.seq, "runs": [run_object(s) for s in runs_started]},
                              indent=2, ensure_ascii=False))
    elif not runs_started:
        click.echo(f"event {event} recorded (seq {record.seq}); nothing was waiting for it")
    statuses = {s.status for s in runs_started}
    sys.exit(1 if statuses - {"succeeded", "waiting"} else 3 if "waiting" in statuses else 0)


@cli.command()
@click.option("--once", is_flag=True, help="Process what is due now, then exit (cron, tests).")
@click.option("--interval", default=1.0, show_default=True, type=Interval(0.05, 3600),
              help="Seconds between checks.")
@click.pass_obj
def serve(obj: Context, once: bool, interval: float) -> None:
    """Run schedules, event triggers and timers, and resume crashed runs, until stopped.

    Its log lines go to stderr. SIGINT or SIGTERM stop it cleanly: runs in flight stop at
    the next step and stay resumable.
    """
    import datetime as dt

    import trio
    from aiosrun.runtime.coordinator.scheduler import Server

    def say(message: str) -> None:
        moment = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        click.echo(f"{moment} {message}", err=True)

    ws = open_workspace(obj)
    with ws:
        server = Server(ws, say, interval)
        if server.lock() is None:
            fail("another `aiosrun serve` is already running for this workspace")
        say(f"serving {ws.root}" + (" once" if once else f" every {interval:g}s"))
        trio.run(server.run, once)
        say("stopped")
