"""The read-only questions about a workspace: one run, the list of runs, the inbox.

The Engine answers them with these functions, and so do the CLI's ``status``, ``runs`` and
``inbox`` through :func:`reading`, without the Engine: a command that only reads opens the
workspace and folds what it needs, and never imports trio, the coordinator, the playbook
checks (jsonschema, lark) or the adapters. That keeps its cost to what it reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from aiosrun.runtime.errors import NotFound
from aiosrun.runtime.results import InboxItem, Run, RunListing
from aiosrun.runtime.workspace import Workspace, find_workspace

if TYPE_CHECKING:
    from aiosrun.runtime.log.projections import RunState


def open_workspace(path: str | os.PathLike[str] | None = None) -> Workspace:
    """The workspace at ``path`` (or found from the current folder upwards, or named by
    ``AIOS_WORKSPACE``); raises :class:`NotFound` when there is none."""
    override = os.fspath(path) if path is not None else os.environ.get("AIOS_WORKSPACE")
    root = find_workspace(Path.cwd(), override)
    if root is None:
        where = f"{override}: " if override else ""
        raise NotFound(f"{where}no workspace here: create aios.yaml (apiVersion: aiosrun/v1, "
                       "kind: Workspace) or pass --workspace DIR")
    return Workspace(root)


def notices_of(ws: Workspace) -> list[str]:
    """What opening the workspace has to tell its user (a torn tail cut off)."""
    return [f"warning: {ws.log.repaired}"] if ws.log.repaired else []


@contextmanager
def reading(path: str | os.PathLike[str] | None = None) -> Iterator[Workspace]:
    """The workspace open for reading; on a clean exit the projection is saved when it has
    grown enough (as the Engine does), so the next opening folds little."""
    ws = open_workspace(path)
    try:
        yield ws
        ws.log.sync()
        ws.save_workspace_snapshot()
    finally:
        ws.close()


def run_state(ws: Workspace, run_id: str) -> RunState:
    """The run as it stands; its read stops at its latest record, which the workspace
    projection knows (so a run long ended costs its own records, not the segment after)."""
    summary = ws.workspace_state(copy=False).runs.get(run_id)
    if summary is None:
        raise NotFound(f"no run '{run_id}'")
    state: RunState = ws.run_state(run_id, last_seq=summary.last_seq or None)
    return state


def run(ws: Workspace, run_id: str) -> Run:
    return Run.of(run_state(ws, run_id))


def runs(ws: Workspace, status: str | None = None) -> list[RunListing]:
    """Every run, oldest first (``status``: only those)."""
    return [RunListing.of(r) for r in ws.workspace_state().runs.values()
            if status is None or r.status == status]


def inbox(ws: Workspace) -> list[InboxItem]:
    """Everything that waits for the operator, oldest first: gates, escalations, waits, and
    events a triggered playbook rejected (until dismissed)."""
    state = ws.workspace_state()
    items = [InboxItem.rejection(r) for r in state.rejected.values()]
    for summary in state.runs.values():
        if summary.status != "waiting":
            continue
        for pending in ws.run_state(summary.id, last_seq=summary.last_seq or None).pending():
            items.append(InboxItem(summary.id, summary.playbook, pending))
    return sorted(items, key=lambda item: int(item.item["seq"]))
