"""Starting a run: its id, its pinned playbook version, its checked inputs (``RunStarted``)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from typing import Any

from aiosrun.adapters.base import (
    PermanentError,
)
from aiosrun.dsl import ir
from aiosrun.runtime.log.eventlog import NewEvent
from aiosrun.runtime.log.projections import RunState, apply_run
from aiosrun.runtime.workspace import Workspace


def new_run_id() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def start_or_load(workspace: Workspace, name: str, inputs: Mapping[str, Any] | None, *,
                  run_id: str | None = None, parent: tuple[str, str] | None = None,
                  version: Any = None, trigger: Any = None,
                  cause: int | None = None) -> tuple[ir.Playbook, RunState]:
    """The playbook version and state of a run, starting it (``RunStarted``) if it is new;
    a given ``run_id`` is checked and started under the log's lock, so it starts once."""
    if run_id is None:
        return _start(workspace, name, inputs, new_run_id(), parent, version, trigger, cause)
    with workspace.log.transaction():  # two dispatchers: one of them starts it
        existing = workspace.run_state(run_id)
        if existing.playbook:
            ws_state = workspace.workspace_state()
            playbook = workspace.playbook(existing.digest, ws_state.versions[existing.digest].ir)
            return playbook, existing
        return _start(workspace, name, inputs, run_id, parent, version, trigger, cause)


def _start(workspace: Workspace, name: str, inputs: Mapping[str, Any] | None, run_id: str,
           parent: tuple[str, str] | None, version: Any, trigger: Any,
           cause: int | None) -> tuple[ir.Playbook, RunState]:
    from aiosrun.runtime.coordinator.inputs import check_inputs

    ws_state = workspace.workspace_state()
    if version is None:
        digest = ws_state.current.get(name)
        if digest is None:
            raise PermanentError(f"no applied playbook named '{name}' (run `aiosrun apply`)")
        version = ws_state.versions[digest]
    playbook = workspace.playbook(version.digest, version.ir)
    checked = check_inputs(playbook, dict(inputs or {}))
    state = RunState(run_id)
    record = workspace.log.append(NewEvent(
        "RunStarted", workspace.masker.data({
            "playbook": playbook.name, "digest": playbook.digest, "inputs": checked,
            "parent": parent[0] if parent else None,
            "parent_step": parent[1] if parent else None, "trigger": trigger}),
        run=state.id, cause=cause))
    apply_run(state, record)
    return playbook, state
