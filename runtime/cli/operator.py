"""CLI commands for the operator in the loop: approve, reject, resolve, inbox.

Registered on the group in :mod:`cli`; heavy imports stay inside the commands.
"""

from __future__ import annotations

import json
from typing import Any

import click
from aiosrun.runtime.cli.app import Context, cli, fail
from aiosrun.runtime.cli.runs import (
    FORMAT,
    _load_run,
    continue_run,
    open_workspace,
    settle_hint,
)


def _only_gated_run(ws: Any) -> str:
    """The one run with an open gate, for ``approve``/``reject`` without a RUN."""
    gated = [summary.id for summary in ws.workspace_state().runs.values()
             if summary.status == "waiting"
             and any(g.decision is None for g in ws.run_state(summary.id).gates.values())]
    if len(gated) != 1:
        listed = ", ".join(gated) or "none"
        fail(f"{len(gated)} runs wait at a gate ({listed}); name the RUN")
    return str(gated[0])


def _decide(obj: Context, run_id: str | None, gate: str | None, decision: str,
            comment: str | None, fmt: str) -> None:
    from aiosrun.runtime.log.eventlog import NewEvent
    from aiosrun.runtime.log.projections import apply_run

    ws = open_workspace(obj)
    with ws:
        run_id = run_id or _only_gated_run(ws)
        state = _load_run(ws, run_id)
        open_gates = [g for g in state.gates.values() if g.decision is None]
        if gate is None:
            if len(open_gates) != 1:
                names = ", ".join(g.gate for g in open_gates) or "none"
                fail(f"run {run_id} has {len(open_gates)} open gates ({names}); name one")
            gate = open_gates[0].gate
        chosen = state.gates.get(gate)
        if chosen is None or chosen.decision is not None:
            names = ", ".join(g.gate for g in open_gates) or "none"
            fail(f"run {run_id} has no open gate '{gate}' (open: {names})")
        record = ws.log.append(NewEvent("GateDecided", ws.masker.data({
            "gate": gate, "decision": decision, "comment": comment, "by": "operator"}),
            run=run_id))
        apply_run(state, record)
        continue_run(ws, state, fmt)


def _gate_command(name: str, decision: str, help_text: str) -> None:
    @cli.command(name, help=help_text)
    @click.argument("run_id", required=False)
    @click.argument("gate", required=False)
    @click.option("--comment", help="Why; shown in the run's history.")
    @FORMAT
    @click.pass_obj
    def decide(obj: Context, run_id: str | None, gate: str | None, comment: str | None,
               fmt: str) -> None:
        _decide(obj, run_id, gate, decision, comment, fmt)


_gate_command("approve", "approved",
              "Approve a gate and continue the run. GATE may be left out when the run has "
              "one open gate, and RUN too when only one run waits at a gate.")
_gate_command("reject", "rejected",
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
    from aiosrun.runtime.log.eventlog import NewEvent
    from aiosrun.runtime.log.projections import apply_run

    if action is None:
        raise click.UsageError("give one of --retry, --skip or --abort")
    outputs: Any = None
    if outputs_json is not None:
        if action != "skip":
            raise click.UsageError("--outputs goes with --skip")
        try:
            outputs = json.loads(outputs_json)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--outputs") from None
    ws = open_workspace(obj)
    with ws:
        state = _load_run(ws, run_id)
        escalation = state.escalations.get(step)
        gate = state.gates.get(step)
        if gate is not None and gate.escalated and gate.decision is None:
            event = resolve_gate(gate, action, outputs)
        elif escalation is None or escalation.action is not None:
            pending = [e.path for e in state.escalations.values() if e.action is None] + [
                g.gate for g in state.gates.values() if g.escalated and g.decision is None]
            fail(f"run {run_id} has no open escalation for step '{step}' "
                 f"(open: {', '.join(pending) or 'none'})")
        else:
            event = {"type": "EscalationResolved", "path": step, "action": action,
                     "outputs": outputs}
        kind = event.pop("type")
        record = ws.log.append(NewEvent(kind, ws.masker.data(event), run=run_id))
        apply_run(state, record)
        continue_run(ws, state, fmt)


def resolve_gate(gate: Any, action: str, outputs: Any) -> dict[str, Any]:
    """A gate whose timeout escalated, settled like any escalation: ``retry`` asks again
    (the gate opens anew with its timeout), ``skip`` goes on with the given outputs (an
    approval by default), ``abort`` rejects it (the run fails and compensates)."""
    from aiosrun.runtime import clock

    if action == "retry":
        timeout_at = None
        if gate.timeout_at is not None and gate.opened_at:
            timeout_at = clock.stamp(clock.now() + (clock.parse(gate.timeout_at)
                                                    - clock.parse(gate.opened_at)))
        return {"type": "GateOpened", "gate": gate.gate, "path": gate.path,
                "message": gate.message, "show": gate.show, "timeout_at": timeout_at,
                "on_timeout": gate.on_timeout}
    if action == "skip":
        return {"type": "GateDecided", "gate": gate.gate, "decision": "approved",
                "comment": "skipped by the operator", "by": "operator",
                **({"outputs": outputs} if outputs is not None else {})}
    return {"type": "GateDecided", "gate": gate.gate, "decision": "rejected",
            "comment": "aborted by the operator", "by": "operator"}


@cli.command()
@FORMAT
@click.pass_obj
def inbox(obj: Context, fmt: str) -> None:
    """Everything waiting for the operator, oldest first, with how to settle it."""
    ws = open_workspace(obj)
    with ws:
        items: list[tuple[Any, dict[str, Any]]] = []
        for summary in ws.workspace_state().runs.values():
            if summary.status != "waiting":
                continue
            items.extend((summary, item) for item in ws.run_state(summary.id).pending())
    items.sort(key=lambda item: item[1]["seq"])
    if fmt == "json":
        click.echo(json.dumps([{"run": s.id, "playbook": s.playbook, **w,
                                "commands": settle_hint(s.id, w)} for s, w in items],
                              indent=2, ensure_ascii=False))
        return
    if not items:
        click.echo("inbox empty: nothing waits for you")
        return
    for summary, waiting in items:
        click.echo(f"{waiting['since']}  {summary.id}  {summary.playbook}  "
                   f"{waiting['kind']} {waiting['id']}: {waiting['message']}")
        for line in settle_hint(summary.id, waiting):
            click.echo(f"    {line}")
