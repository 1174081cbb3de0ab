"""Executing one run for a caller that must outlive it (``serve``, ``resume --all``).

:func:`execute_run` takes the run's lease, executes it, and turns an exception that escapes
the interpreter (a bug, a value that explodes where nothing expected it) into that run's
failure (``RunFailed``, error class ``internal``). A run is then never left ``running`` to
crash every later recovery, and the caller goes on with the other runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiosrun.dsl import ir
from aiosrun.runtime.coordinator.frames import internal_message
from aiosrun.runtime.coordinator.interpreter import OnRecord, Runner
from aiosrun.runtime.log.eventlog import LogError, NewEvent
from aiosrun.runtime.log.projections import RunState
from aiosrun.runtime.log.storage import StorageError
from aiosrun.runtime.log.store import RunLease
from aiosrun.runtime.workspace import Workspace


async def execute_run(ws: Workspace, playbook: ir.Playbook | None, state: RunState, *,
                      on_record: OnRecord | None = None,
                      should_stop: Callable[[], bool] | None = None,
                      lease: RunLease | None = None) -> RunState | None:
    """The run's final (or suspended) state; None when another process holds its lease
    (``lease``: one the caller already holds, released here)."""
    if lease is None:
        lease = ws.store.lease(state.id)
        if not lease.try_acquire():
            lease.close()
            return None
    try:
        try:
            runner = Runner(ws, playbook or ws.playbook(state.digest), state, on_record)
            if should_stop is not None:
                runner.should_stop = should_stop
            return await runner.execute()
        except (StorageError, LogError):
            raise  # the log refused (a full disk, corruption): the run stays resumable
        except Exception as exc:  # the run fails; the caller and the other runs go on
            return fail_internal(ws, state.id, exc)
    finally:
        lease.release()


def fail_internal(ws: Workspace, run_id: str, exc: BaseException) -> RunState:
    """Record that an unexpected exception ended the run (unless it has already ended)."""
    state: RunState = ws.run_state(run_id)
    if not state.finished:
        message = internal_message(exc)
        if state.compensating:  # undoing had begun: what is left is the operator's
            event = NewEvent("RunNeedsAttention", ws.masker.data(
                {"reason": f"compensation stopped: {message}"}), run=run_id)
        else:
            error: dict[str, Any] = {"class": "internal", "message": message}
            event = NewEvent("RunFailed", ws.masker.data({"error": error, "step": None}),
                             run=run_id)
        ws.log.append(event)
        ws.log.sync()
        state = ws.run_state(run_id)
        ws.save_run_snapshot(state)
    return state
