"""Where a run stops and waits, durably: gates, escalations to the operator, waits for an
event or a time. Opening one records it and suspends the run; a later call reads the outcome."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import trio
from aiosrun.adapters.base import (
    AdapterError,
    PermanentError,
    StepTimeout,
)
from aiosrun.dsl import ir
from aiosrun.dsl.errors import ExpressionError
from aiosrun.dsl.render import render
from aiosrun.runtime import clock
from aiosrun.runtime.coordinator.frames import (
    Frame,
    GateRejected,
    Suspended,
    event_context,
    render_text,
    text_of,
)
from aiosrun.runtime.coordinator.runner_base import RunnerBase
from aiosrun.runtime.log.projections import GateState


def gate_resolution(gate: GateState, action: str, outputs: Any) -> tuple[str, dict[str, Any]]:
    """The record that settles a gate whose timeout escalated, as an escalation is settled:
    ``retry`` asks again (the gate opens anew with its timeout), ``skip`` goes on with the
    given outputs (an approval by default), ``abort`` rejects it (the run compensates)."""
    if action == "retry":
        timeout_at = None
        if gate.timeout_at is not None and gate.opened_at:
            timeout_at = clock.stamp(clock.now() + (clock.parse(gate.timeout_at)
                                                    - clock.parse(gate.opened_at)))
        return "GateOpened", {"gate": gate.gate, "path": gate.path, "message": gate.message,
                              "show": gate.show, "timeout_at": timeout_at,
                              "on_timeout": gate.on_timeout}
    if action == "skip":
        return "GateDecided", {"gate": gate.gate, "decision": "approved",
                               "comment": "skipped by the operator", "by": "operator",
                               **({"outputs": outputs} if outputs is not None else {})}
    return "GateDecided", {"gate": gate.gate, "decision": "rejected",
                           "comment": "aborted by the operator", "by": "operator"}


def wait_outputs(satisfied: dict[str, Any]) -> dict[str, Any]:
    """A wait's outputs: the payload of the event that ended it, shaped as ``event`` in its
    ``match:``; a timer has no payload. (The event's name and seq are in the timeline.)"""
    if satisfied.get("event") is None:
        return {}
    return event_context(satisfied)


class Suspensions(RunnerBase):
    def escalate(self, step: ir.Step, frame: Frame, path: str, attempt: int,
                 error: AdapterError) -> None:
        """Hand the step to the operator (``aiosrun inbox``/``resolve``) and stop the run."""
        args: Any = getattr(error, "details", None)  # an agent's transcript
        if isinstance(step.body, ir.Uses):
            try:
                args = render(step.body.args, self.contexts(frame))
            except ExpressionError:
                args = None
        message = str(error)
        if step.escalate is not None and step.escalate.message:
            with contextlib.suppress(ExpressionError):
                message = f"{render_text(step.escalate.message, self.contexts(frame))} " \
                          f"({error.error_class}: {error})"
        self.record("StepAttemptFailed", path=path, attempt=attempt,
                    error_class=error.error_class, message=str(error), escalated=True)
        self.record("EscalationOpened", path=path, error_class=error.error_class,
                    message=message, attempts=attempt, args=args)
        raise Suspended

    def blocked(self, step: ir.Step, path: str) -> bool:
        """Whether the step still waits for the operator, an event or a timer."""
        now = clock.now()
        for gate_id in (path, f"{path}#approval"):
            gate = self.state.gates.get(gate_id)
            if gate is not None and gate.decision is None:
                due = gate.timeout_at is not None and now >= clock.parse(gate.timeout_at)
                return gate.escalated or not due
        wait = self.state.waits.get(path)
        if wait is not None and wait.satisfied is None:
            due = wait.due_at is not None and now >= clock.parse(wait.due_at)
            timed_out = wait.timeout_at is not None and now >= clock.parse(wait.timeout_at)
            return not (due or timed_out)
        return False

    async def wait(self, body: ir.Wait, path: str, frame: Frame) -> Any:
        """A durable wait for an event (woken by the dispatcher), a duration or a time."""
        wait = self.state.waits.get(path)
        if wait is None:
            now = clock.now()
            due_at = None
            if body.duration_ms is not None:
                due_at = clock.stamp(now + dt.timedelta(milliseconds=body.duration_ms))
            elif body.until is not None:
                until = text_of(render(body.until, self.contexts(frame)))
                try:
                    moment = dt.datetime.fromisoformat(until.replace("Z", "+00:00"))
                    due_at = clock.stamp(moment if moment.tzinfo
                                         else moment.replace(tzinfo=dt.UTC))
                    clock.parse(due_at)  # what the log holds must read back (year 1 does not)
                except (ValueError, OverflowError):
                    raise PermanentError(f"wait until: '{until}' is not an RFC 3339 time "
                                         "between the years 1 and 9999") from None
            timeout_at = None
            if body.timeout_ms is not None:
                timeout_at = clock.stamp(now + dt.timedelta(milliseconds=body.timeout_ms))
            self.record("WaitOpened", path=path, event=body.event, due_at=due_at,
                        timeout_at=timeout_at)
            wait = self.state.waits[path]
        if wait.satisfied is None and wait.due_at is not None \
                and clock.now() >= clock.parse(wait.due_at):
            self.record("WaitSatisfied", path=path, by="timer", event=None, data=None,
                        seq=None)
            wait = self.state.waits[path]
        if wait.satisfied is not None:
            return wait_outputs(wait.satisfied)
        now = clock.now()
        if wait.timeout_at is not None and now >= clock.parse(wait.timeout_at):
            raise StepTimeout(f"no '{wait.event}' event arrived before {wait.timeout_at}")
        raise Suspended

    async def gate(self, gate_id: str, path: str, message: Any, show: Any,
                   timeout_ms: int | None, on_timeout: str, frame: Frame) -> dict[str, Any]:
        """Open the gate, or read its decision; a gate still open suspends the run."""
        gate = self.state.gates.get(gate_id)
        if gate is None:
            contexts = self.contexts(frame)
            rendered = render(message, contexts) if isinstance(message, ir.VALUE_TYPES) \
                else message
            shown = render(show, contexts) if isinstance(show, ir.VALUE_TYPES) else show
            timeout_at = None
            if timeout_ms is not None:
                timeout_at = clock.stamp(clock.now() + dt.timedelta(milliseconds=timeout_ms))
            self.record("GateOpened", gate=gate_id, path=path, message=text_of(rendered),
                        show=shown, timeout_at=timeout_at, on_timeout=on_timeout)
            raise Suspended
        due = gate.timeout_at is not None and clock.now() >= clock.parse(gate.timeout_at)
        if gate.decision is None and due and not gate.escalated:
            if gate.on_timeout == "escalate":
                self.record("GateEscalated", gate=gate_id)
            else:
                decision = "approved" if gate.on_timeout == "approve" else "rejected"
                self.record("GateDecided", gate=gate_id, decision=decision,
                            comment=f"no decision within the timeout ({gate.on_timeout})",
                            by="timeout")
        if gate.decision is None:
            raise Suspended
        if gate.outputs is not None:  # an escalated gate the operator skipped
            return dict(gate.outputs)
        if gate.decision != "approved":
            raise GateRejected(f"gate '{gate_id}' was rejected"
                               + (f": {gate.comment}" if gate.comment else ""))
        return {"decision": gate.decision, "comment": gate.comment,
                "decided_at": gate.decided_at}

    async def sleep_until(self, at: str, delay: float) -> None:
        """Finish a retry delay that a crash interrupted, measured on the wall clock."""
        remaining = (clock.parse(at) - clock.now()).total_seconds() + delay
        if remaining > 0:
            await trio.sleep(remaining)
