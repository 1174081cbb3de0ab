"""Starting a run: its id, its pinned playbook version, its checked inputs (``RunStarted``).

A start is recorded at most once per run id and per idempotency key, across processes: the
check and the append happen together under the log's lock (``append_many(guard=)``). So an
event that two dispatchers see starts its playbook once, a cron slot fires once, and a start
retried with the same key returns the first run.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from typing import Any

from aiosrun.dsl import ir
from aiosrun.runtime.coordinator.inputs import check_inputs
from aiosrun.runtime.errors import PlaybookNotFound
from aiosrun.runtime.log.eventlog import NewEvent
from aiosrun.runtime.log.projections import RunState, apply_run
from aiosrun.runtime.workspace import Workspace


def new_run_id() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def load_run(workspace: Workspace, run_id: str) -> tuple[ir.Playbook, RunState]:
    """A recorded run's pinned playbook and its state."""
    existing = workspace.run_state(run_id)
    ws_state = workspace.workspace_state()
    playbook = workspace.playbook(existing.digest, ws_state.versions[existing.digest].ir)
    return playbook, existing


def start_or_load(workspace: Workspace, name: str, inputs: Mapping[str, Any] | None, *,
                  run_id: str | None = None, parent: tuple[str, str] | None = None,
                  version: Any = None, trigger: Any = None, cause: int | None = None,
                  idempotency_key: str | None = None) -> tuple[ir.Playbook, RunState]:
    """The playbook version and state of a run, starting it (``RunStarted``) if it is new.

    With ``run_id`` or ``idempotency_key``, a run already recorded under it (by this process
    or another) is loaded instead of started again."""
    playbook, state, _ = start_run(workspace, name, inputs, run_id=run_id, parent=parent,
                                   version=version, trigger=trigger, cause=cause,
                                   idempotency_key=idempotency_key)
    return playbook, state


def start_run(workspace: Workspace, name: str, inputs: Mapping[str, Any] | None, *,
              run_id: str | None = None, parent: tuple[str, str] | None = None,
              version: Any = None, trigger: Any = None, cause: int | None = None,
              idempotency_key: str | None = None) -> tuple[ir.Playbook, RunState, bool]:
    """:func:`start_or_load`, also saying whether this call started the run."""
    if run_id is not None and workspace.log.has_run(run_id):
        existing = workspace.run_state(run_id)
        if existing.playbook:
            return (*load_run(workspace, run_id), False)
    ws_state = workspace.workspace_state(copy=False)
    if idempotency_key is not None and idempotency_key in ws_state.idempotency_keys:
        return (*load_run(workspace, ws_state.idempotency_keys[idempotency_key]), False)
    if version is None:
        digest = ws_state.current.get(name)
        if digest is None:
            raise PlaybookNotFound(f"no applied playbook named '{name}' (run `aiosrun apply`)")
        version = ws_state.versions[digest]
    playbook = workspace.playbook(version.digest, version.ir)
    checked = check_inputs(playbook, dict(inputs or {}))
    state = RunState(run_id or new_run_id())
    data: dict[str, Any] = {
        "playbook": playbook.name, "digest": playbook.digest, "inputs": checked,
        "parent": parent[0] if parent else None,
        "parent_step": parent[1] if parent else None, "trigger": trigger}
    if idempotency_key is not None:
        data["idempotency_key"] = idempotency_key
    winner: list[str] = []

    def first() -> bool:
        """Under the log's lock: nobody has started this run (or used this key) meanwhile."""
        if run_id is not None and workspace.log.has_run(run_id):
            winner.append(run_id)
            return False
        if idempotency_key is not None:
            known = workspace.workspace_state(copy=False).idempotency_keys.get(idempotency_key)
            if known is not None:
                winner.append(known)
                return False
        return True

    records = workspace.log.append_many(
        [NewEvent("RunStarted", workspace.masker.data(data), run=state.id, cause=cause)],
        guard=first if run_id is not None or idempotency_key is not None else None)
    if not records:
        return (*load_run(workspace, winner[0]), False)
    apply_run(state, records[0])
    return playbook, state, True
