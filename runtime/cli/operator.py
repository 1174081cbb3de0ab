"""CLI commands for the operator in the loop: approve, reject, resolve, inbox.

Each parses its arguments, calls the Engine (which records the decision and continues the
run in this command) and renders what it returns.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click
from aiosrun.runtime.cli.app import Context, cli
from aiosrun.runtime.cli.render import (
    FORMAT,
    Progress,
    exit_for,
    read_session,
    report,
    report_dispatched,
    session,
)

if TYPE_CHECKING:
    from aiosrun.runtime.engine import Engine


def _gate_command(name: str, help_text: str) -> None:
    @cli.command(name, help=help_text)
    @click.argument("run_id", required=False)
    @click.argument("gate", required=False)
    @click.option("--comment", help="Why; shown in the run's history.")
    @FORMAT
    @click.pass_obj
    def decide(obj: Context, run_id: str | None, gate: str | None, comment: str | None,
               fmt: str) -> None:
        async def work(engine: Engine) -> Any:
            engine.observers.append(Progress(quiet=fmt == "json"))
            method = engine.approve if name == "approve" else engine.reject
            result = await method(run_id, gate, comment)
            report_dispatched(engine, fmt)
            return result

        final = session(obj, work)
        report(final, fmt)
        exit_for(final)


_gate_command("approve",
              "Approve a gate and continue the run. GATE may be left out when the run has "
              "one open gate, and RUN too when only one run waits at a gate.")
_gate_command("reject",
              "Reject a gate: the run fails and its completed steps are compensated. RUN and "
              "GATE may be left out as for approve.")


@cli.command()
@click.argument("run_id")
@click.argument("step")
@click.option("--retry", "action", flag_value="retry", help="Try the step again.")
@click.option("--skip", "action", flag_value="skip",
              help="Treat the step as done, with --outputs as its outputs.")
@click.option("--abort", "action", flag_value="abort", help="Fail the run and compensate.")
@click.option("--outputs", "outputs_json", metavar="JSON", help="Outputs for --skip.")
@FORMAT
@click.pass_obj
def resolve(obj: Context, run_id: str, step: str, action: str | None,
            outputs_json: str | None, fmt: str) -> None:
    """Settle an escalated step: --retry, --skip [--outputs JSON] or --abort."""
    if action is None:
        raise click.UsageError("give one of --retry, --skip or --abort")
    outputs: Any = None
    if outputs_json is not None:
        if action != "skip":
            raise click.UsageError("--outputs goes with --skip")
        from aiosrun.runtime.cli.parsing import json_option

        outputs = json_option(outputs_json, "--outputs")
    chosen = action

    async def work(engine: Engine) -> Any:
        engine.observers.append(Progress(quiet=fmt == "json"))
        result = await engine.resolve(run_id, step, chosen, outputs)
        report_dispatched(engine, fmt)
        return result

    final = session(obj, work)
    report(final, fmt)
    exit_for(final)


@cli.command()
@click.option("--dismiss", "dismiss_id", metavar="ID",
              help="Take a rejected event off the inbox (its ID as inbox lists it).")
@FORMAT
@click.pass_obj
def inbox(obj: Context, dismiss_id: str | None, fmt: str) -> None:
    """Everything waiting for the operator, oldest first, with how to settle it: gates,
    escalations, waits, and events a triggered playbook rejected."""
    if dismiss_id is not None:
        session(obj, lambda engine: engine.dismiss(dismiss_id))
        click.echo(f"rejected event {dismiss_id} dismissed")
        return
    from aiosrun.runtime import reading

    items = read_session(obj, reading.inbox)
    if fmt == "json":
        click.echo(json.dumps([item.to_json() for item in items], indent=2,
                              ensure_ascii=False))
        return
    if not items:
        click.echo("inbox empty: nothing waits for you")
        return
    for item in items:
        waiting = item.item
        click.echo(f"{waiting['since']}  {item.run or '-'}  {item.playbook}  "
                   f"{waiting['kind']} {waiting['id']}: {waiting['message']}")
        for line in item.commands:
            click.echo(f"    {line}")
