"""CLI commands for events and the long-running server: emit, serve.

Each parses its arguments, calls the Engine and renders what it returns.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
from aiosrun.runtime.cli.app import Context, cli
from aiosrun.runtime.cli.parsing import Interval, json_option
from aiosrun.runtime.cli.render import FORMAT, Progress, dump, session

if TYPE_CHECKING:
    from aiosrun.runtime.engine import Engine



@cli.command("emit")
@click.argument("event")
@click.option("--data", "data_text", metavar="JSON|@FILE", help="The payload: JSON, or @file.")
@click.option("--id", "event_id", metavar="ID",
              help="The event's id: an event with an id already recorded is not recorded or "
                   "dispatched again (a webhook's delivery id, say).")
@FORMAT
@click.pass_obj
def emit_command(obj: Context, event: str, data_text: str | None, event_id: str | None,
                 fmt: str) -> None:
    """Record an event; wake the runs waiting for it and start the playbooks it triggers."""
    from aiosrun.dsl.names import EVENT_NAME

    if not EVENT_NAME.fullmatch(event):
        raise click.BadParameter("an event name is dot-separated words, such as "
                                 "customer.signed_up", param_hint="EVENT")
    data: Any = None
    if data_text is not None:
        data = json_option(data_text, "--data")

    async def work(engine: Engine) -> Any:
        engine.observers.append(Progress(quiet=fmt == "json"))
        return await engine.emit(event, data, id=event_id, source={"cli": True}, wait=True)

    result = session(obj, work)
    if result.duplicate:
        if fmt == "json":
            dump(result.to_json())
        else:
            click.echo(f"event {event} with id {event_id} was already recorded (seq "
                       f"{result.seq}); nothing done")
        return
    if not result.dispatched:
        click.echo(f"event {event} recorded (seq {result.seq}); serve dispatches it", err=True)
        return
    if fmt != "json":
        for rejected in result.rejected:
            click.echo(f"event {event} (seq {result.seq}): playbook {rejected['playbook']} "
                       f"rejected it: {rejected['error']} (listed in `aiosrun inbox`)",
                       err=True)
    if fmt == "json":
        dump(result.to_json())
    elif not result.runs and not result.rejected:
        click.echo(f"event {event} recorded (seq {result.seq}); nothing was waiting for it")
    statuses = {run.status for run in result.runs}
    failed = statuses & {"failed", "compensated", "cancelled", "needs_attention"}
    if result.rejected:
        sys.exit(1)
    sys.exit(1 if failed else 3 if "waiting" in statuses else 0)  # running: elsewhere


@cli.command()
@click.option("--once", is_flag=True, help="Process what is due now, then exit (cron, tests).")
@click.option("--interval", default=1.0, show_default=True, type=Interval(0.05, 3600),
              help="Seconds between checks.")
@click.option("--http", "listen", metavar="[HOST:]PORT",
              help="Also serve the HTTP API and webhooks there (default: server.listen in "
                   "aios.yaml, if set; the host defaults to 127.0.0.1).")
@click.pass_obj
def serve(obj: Context, once: bool, interval: float, listen: str | None) -> None:
    """Run schedules, event triggers and timers, and resume crashed runs, until stopped.

    With --http (or server.listen) the same process serves the HTTP API and webhooks. Its
    log lines go to stderr. SIGINT or SIGTERM stop it cleanly: runs in flight stop at the
    next step and stay resumable.
    """
    import datetime as dt

    if once and listen is not None:
        raise click.UsageError("--once and --http do not go together")

    def say(message: str) -> None:
        moment = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        click.echo(f"{moment} {message}", err=True)

    async def work(engine: Engine) -> None:
        server = engine.ws.settings.data.get("server") or {}
        if not once and (listen is not None or server.get("listen") is not None):
            from aiosrun.runtime.server.serve import config_for, serve_http

            await serve_http(engine, config_for(engine, listen), say, interval=interval)
        else:
            await engine.serve(say, once=once, interval=interval)
        say("stopped")

    session(obj, work)
