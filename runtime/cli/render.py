"""What the commands share: opening an Engine for one command, and rendering its results.

:func:`session` runs one command's work on an :class:`~aiosrun.runtime.engine.Engine` under
``trio.run``, prints the Engine's notices on stderr, and turns its errors into one
``error:`` line and exit status 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from aiosrun.runtime.cli.app import Context, fail

if TYPE_CHECKING:
    from aiosrun.runtime.engine import Engine, Record
    from aiosrun.runtime.results import Run
    from aiosrun.runtime.workspace import Workspace

T = TypeVar("T")

EXIT = {"succeeded": 0, "waiting": 3, "running": 1, "failed": 1, "compensated": 1,
        "cancelled": 1, "needs_attention": 1}

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                      show_default=True, help="Output format.")


def session(obj: Context, work: Callable[[Engine], Awaitable[T]], *,
            record_models: bool = False) -> T:
    """Open the workspace's Engine, do ``work`` on it, close it; errors end the command."""
    import trio
    from aiosrun.runtime.engine import Engine
    from aiosrun.runtime.errors import EngineError

    async def main() -> T:
        async with Engine.open(obj.workspace_path(), record_models=record_models) as engine:
            try:
                return await work(engine)
            finally:
                for notice in engine.notices:
                    click.echo(notice, err=True)
                engine.notices.clear()

    try:
        return trio.run(main)
    except EngineError as exc:
        fail(str(exc))


def read_session(obj: Context, work: Callable[[Workspace], T]) -> T:
    """Answer a read-only command (``status``, ``runs``, ``inbox``) from the workspace
    directly: the Engine would load trio and the coordinator for nothing."""
    from aiosrun.runtime.errors import EngineError
    from aiosrun.runtime.reading import notices_of, reading

    try:
        with reading(obj.workspace_path()) as ws:
            try:
                return work(ws)
            finally:
                for notice in notices_of(ws):
                    click.echo(notice, err=True)
    except EngineError as exc:
        fail(str(exc))


def dump(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


class Progress:
    """One line per step as it ends, on stderr (stdout stays for results)."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.quiet = quiet

    def __call__(self, record: Record) -> None:
        if self.quiet:
            return
        data = record.data
        marks = {"StepSucceeded": "[green]✓[/]", "StepFailed": "[red]✗[/]",
                 "StepSkipped": "[dim]-[/]", "StepCancelled": "[yellow]⊘[/]",
                 "StepAttemptFailed": "[yellow]↻[/]", "CompensationSucceeded": "[cyan]↶[/]",
                 "CompensationFailed": "[red]↶✗[/]", "ModelCalled": "[blue]⋯[/]"}
        mark = marks.get(record.type)
        if mark is None:
            return
        line = f"{mark} {data.get('path', '')}"
        if record.type == "StepAttemptFailed":
            line += (f" attempt {data.get('attempt')} failed ({data.get('error_class')}: "
                     f"{data.get('message')})")
            line += ("; handed to the operator" if data.get("escalated")
                     else f"; retrying in {float(data.get('retry_in') or 0):.2f}s")
        elif record.type == "StepFailed":
            line += f" failed: {data['error_class']}: {data['message']}"
        elif record.type == "StepSkipped":
            line += " skipped"
        elif record.type == "ModelCalled":
            line += f" {describe_model_call(data)}"
        elif record.type.startswith("Compensation"):
            line += " compensated" if record.type.endswith("Succeeded") else " compensation failed"
        self.console.print(line, soft_wrap=True)


def describe_model_call(data: Any) -> str:
    """``tier 1 small (gpt-4o-mini): 812+95 tokens, $0.000179, 640 ms, not accepted``."""
    text = (f"turn {data['turn']} " if data.get("turn") is not None else "") + (
            f"tier {data.get('tier')} {data.get('alias')} ({data.get('model')}): "
            f"{data.get('input_tokens', 0)}+{data.get('output_tokens', 0)} tokens, "
            f"${float(data.get('cost_usd') or 0):.6f}")
    if data.get("cached"):
        text += ", from the cache"
    elif data.get("latency_ms") is not None:
        text += f", {float(data['latency_ms']):.0f} ms"
    if data.get("error"):
        return text + f", failed: {data['error']}"
    if data.get("turn") is not None:
        calls = data.get("tool_calls")
        if calls is None and isinstance(data.get("output"), dict):
            calls = [c.get("name") for c in data["output"].get("tool_calls") or ()]
        return text + (f", calls {', '.join(map(str, calls))}" if calls else ", answers")
    return text + (", accepted" if data.get("accepted") else ", not accepted")


def show_waiting(run: Run) -> None:
    from aiosrun.runtime.results import settle_hint
    from rich.console import Console
    from rich.panel import Panel

    waiting = run.waiting
    if waiting is None:
        return
    console = Console(stderr=True, highlight=False)
    body = waiting["message"]
    if waiting.get("show") is not None:
        body += "\n\n" + json.dumps(waiting["show"], indent=2, ensure_ascii=False)
    if waiting.get("args") is not None:
        body += "\n\narguments: " + json.dumps(waiting["args"], ensure_ascii=False)
    title = f"{waiting['kind']} {waiting['id']}"
    console.print(Panel(body, title=title, expand=False))
    for line in settle_hint(run.id, waiting):
        console.print(f"  {line}", soft_wrap=True)


def report(run: Run, fmt: str) -> None:
    if fmt == "json":
        dump(run.to_json())
        return
    click.echo(f"run {run.id} ({run.playbook}): {run.status}")
    if run.status == "waiting":
        show_waiting(run)
    if run.outputs:
        click.echo(json.dumps(run.outputs, indent=2, ensure_ascii=False))
    if run.error:
        click.echo(f"error: {run.error.get('message', run.error)}")


def report_dispatched(engine: Engine, fmt: str, since: int = 0) -> None:
    """The runs that events started or woke while the command ran, a line each."""
    if fmt == "json":
        return
    for run in engine.dispatched[since:]:
        click.echo(f"event: run {run.id} ({run.playbook}): {run.status}", err=True)


def exit_for(run: Run) -> None:
    sys.exit(EXIT.get(run.status, 1))
