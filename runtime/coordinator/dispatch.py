"""Dispatching events: waking the runs that wait for them and starting triggered playbooks.

Each ``EventEmitted`` record is dispatched once: matching ``wait:`` steps are satisfied
(``WaitSatisfied``), applied playbooks whose ``on: event`` (and ``if``) match are started with
the run id ``ev<seq>-<playbook>``, and ``EventDispatched`` closes it. A crash in between is
harmless: a satisfied wait is not satisfied twice, and starting a run whose id exists only
loads it, so every event starts each playbook once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiosrun.adapters.base import AdapterError
from aiosrun.dsl import ir
from aiosrun.dsl.errors import ExpressionError
from aiosrun.dsl.render import render
from aiosrun.dsl.values import truthy
from aiosrun.runtime.coordinator.execution import execute_run
from aiosrun.runtime.coordinator.frames import Frame, event_context
from aiosrun.runtime.coordinator.interpreter import OnRecord, Runner
from aiosrun.runtime.coordinator.runs import start_or_load
from aiosrun.runtime.log.eventlog import NewEvent, Record
from aiosrun.runtime.log.projections import RunState, apply_run
from aiosrun.runtime.workspace import Workspace

MAX_ROUNDS = 1000  # events that trigger events: a bound, not a loop forever


def emit(ws: Workspace, name: str, data: Any, source: Mapping[str, Any]) -> Record:
    return ws.log.append(NewEvent("EventEmitted", ws.masker.data(
        {"event": name, "data": data, "source": dict(source)})))


Start = Callable[[ir.Playbook, RunState], Awaitable[RunState | None]]


def emit_event(ws: Workspace, name: str, data: Any, source: Mapping[str, Any],
               event_id: str | None = None) -> tuple[int, bool]:
    """Record an event once per ``event_id``: returns its seq and whether it was already
    recorded (then nothing was appended). The check and the append are one step under the
    log's lock, so two processes given the same id record it once."""
    if event_id is None:
        return emit(ws, name, data, source).seq, False
    known: list[int] = []

    def unseen() -> bool:
        seq = ws.workspace_state(copy=False).event_ids.get(event_id)
        if seq is not None:
            known.append(seq)
        return seq is None

    records = ws.log.append_many([NewEvent("EventEmitted", ws.masker.data(
        {"event": name, "data": data, "id": event_id, "source": dict(source)}))],
        guard=unseen)
    if not records:
        return known[0], True
    return records[0].seq, False


async def dispatch(ws: Workspace, on_record: OnRecord | None = None,
                   should_stop: Callable[[], bool] = lambda: False,
                   on_rejected: Callable[[str], None] | None = None,
                   start: Start | None = None) -> list[RunState]:
    """Dispatch every pending event (and those the woken runs emit); returns the runs that
    were started or continued, in their final state. ``should_stop`` is serve's shutdown:
    runs stop at the next step boundary, and no further event is taken. ``start`` hands a
    run to the caller instead of executing it here (serve runs them concurrently)."""
    touched: dict[str, RunState] = {}

    async def _execute(ws: Workspace, playbook: ir.Playbook, state: RunState,
                       on_record: OnRecord | None,
                       should_stop: Callable[[], bool]) -> RunState:
        if start is not None:
            return await start(playbook, state) or state
        final = await execute_run(ws, playbook, state, on_record=on_record,
                                  should_stop=should_stop)
        return final or state  # None: another process has it and will carry it on

    for _ in range(MAX_ROUNDS):
        if should_stop():
            break
        pending = ws.workspace_state().pending_events
        if not pending:
            break
        seq = min(pending)
        event = pending[seq]
        started: list[str] = []
        woke: list[str] = []
        for run_id, playbook, state in _waiting_runs(ws, event):
            woke.append(run_id)
            touched[run_id] = await _execute(ws, playbook, state, on_record, should_stop)
        for name, playbook in _triggered(ws, event):
            run_id = f"ev{seq}-{name}"
            data = event.get("data")
            inputs = {k: v for k, v in (data.items() if isinstance(data, Mapping) else ())
                      if k in playbook.inputs}
            try:
                loaded, state = start_or_load(ws, name, inputs, run_id=run_id,
                                              trigger=event_context(event), cause=seq)
            except AdapterError as exc:  # bad inputs: recorded on the event, nothing started
                ws.log.append(NewEvent("EventRejected", ws.masker.data({
                    "seq": seq, "event": event["event"], "playbook": name,
                    "error": str(exc)}), cause=seq))
                if on_rejected is not None:
                    on_rejected(f"event {event['event']} (seq {seq}) rejected by {name}: {exc}")
                continue
            started.append(run_id)
            touched[run_id] = await _execute(ws, loaded, state, on_record, should_stop)
        def still_pending(seq: int = seq) -> bool:  # another dispatcher may have closed it
            return seq in ws.workspace_state(copy=False).pending_events

        ws.log.append_many([NewEvent("EventDispatched", {"seq": seq, "started": started,
                                                         "woke": woke}, cause=seq)],
                           guard=still_pending)
    return list(touched.values())


def due_timers(state: RunState, now: Any, run_timeout_ms: int | None = None) -> bool:
    """Whether a waiting run has a gate or wait whose time has come, or (with its
    playbook's ``policy.timeout``) has outlived its deadline."""
    from aiosrun.runtime import clock

    if run_timeout_ms is not None and state.started_at is not None and \
            (now - clock.parse(state.started_at)).total_seconds() * 1000 >= run_timeout_ms:
        return True

    for gate in state.gates.values():
        if gate.decision is None and not gate.escalated and gate.timeout_at \
                and now >= clock.parse(gate.timeout_at):
            return True
    for wait in state.waits.values():
        if wait.satisfied is None and any(
                moment and now >= clock.parse(moment) for moment in (wait.due_at,
                                                                     wait.timeout_at)):
            return True
    return False


def _waiting_runs(ws: Workspace, event: Mapping[str, Any]) -> list[tuple[str, Any, RunState]]:
    found = []
    workspace_state = ws.workspace_state()
    for summary in workspace_state.runs.values():
        if summary.status != "waiting":
            continue
        state = ws.run_state(summary.id)
        playbook = ws.playbook(state.digest)
        for wait in state.waits.values():
            if wait.satisfied is not None or wait.event != event["event"]:
                continue
            if not _matches(ws, playbook, state, wait.path, event):
                continue
            path = wait.path

            def unsatisfied(run_id: str = state.id, path: str = path) -> bool:
                fresh = ws.run_state(run_id).waits.get(path)
                return fresh is not None and fresh.satisfied is None

            records = ws.log.append_many([NewEvent("WaitSatisfied", ws.masker.data({
                "path": wait.path, "by": "event", "event": event["event"],
                "data": event.get("data"), "seq": event["seq"],
                **({"id": event["id"]} if event.get("id") else {})}), run=state.id,
                cause=event["seq"])], guard=unsatisfied)
            if not records:
                break  # another dispatcher woke it
            apply_run(state, records[0])
            found.append((state.id, playbook, state))
            break
    return found


def _matches(ws: Workspace, playbook: ir.Playbook, state: RunState, path: str,
             event: Mapping[str, Any]) -> bool:
    from aiosrun.runtime.coordinator.frames import step_template

    step = next((s for s in playbook.walk() if s.path == step_template(path)), None)
    if step is None or not isinstance(step.body, ir.Wait) or step.body.match is None:
        return step is not None
    frame = Frame("")
    for done in state.completed:
        if "/" not in done:
            frame.see(state.steps[done].id, done, state.steps[done])
    contexts = {**Runner(ws, playbook, state).contexts(frame), "event": event_context(event)}
    try:
        return truthy(render(step.body.match, contexts))
    except ExpressionError:
        return False


def _triggered(ws: Workspace, event: Mapping[str, Any]) -> list[tuple[str, ir.Playbook]]:
    state = ws.workspace_state()
    found = []
    for name, digest in sorted(state.current.items()):
        playbook = ws.playbook(digest)
        if event["event"] not in playbook.triggers.events:
            continue
        condition = playbook.triggers.condition
        if condition is not None:
            contexts = {"event": event_context(event), "vars": ws.settings.vars}
            try:
                if not truthy(render(condition, contexts)):
                    continue
            except ExpressionError:
                continue
        found.append((name, playbook))
    return found
