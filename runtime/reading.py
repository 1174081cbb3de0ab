"""The read-only questions about a workspace: one run, the list of runs, the inbox.

The Engine answers them with these functions, and so do the CLI's ``status``, ``runs`` and
``inbox`` through :func:`reading`, without the Engine: a command that only reads opens the
workspace and folds what it needs, and never imports trio, the coordinator, the playbook
checks (jsonschema, lark) or the adapters. Nor does it load the whole workspace projection:
it reads the parts of the snapshot it shows (:mod:`.log.sections`) and folds the records
after it. That keeps its cost to what it reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiosrun.runtime.errors import NotFound
from aiosrun.runtime.log.eventlog import LogCorrupted, Record
from aiosrun.runtime.log.projections import RunState, RunSummary, WorkspaceState, fold_workspace
from aiosrun.runtime.results import InboxItem, Run, RunListing
from aiosrun.runtime.workspace import WORKSPACE_SNAPSHOT_EVERY, Workspace, find_workspace

if TYPE_CHECKING:
    from aiosrun.runtime.log.sections import SnapshotFile


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
        if ws.projection_loaded:  # a read of the snapshot's parts leaves it as it is
            ws.save_workspace_snapshot()
    finally:
        ws.close()


class Summaries(Protocol):
    """The run summaries a read needs, as of the log's end."""

    rejected: dict[str, dict[str, Any]]

    def summary(self, run_id: str) -> RunSummary | None: ...

    def latest(self) -> Iterator[RunSummary]:
        """The latest started first."""
        ...

    def waiting(self) -> list[RunSummary]: ...


class _Held:
    """This process's projection (the Engine's, or one folded because there was no
    snapshot to read in parts)."""

    def __init__(self, state: WorkspaceState) -> None:
        self.state, self.rejected = state, state.rejected

    def summary(self, run_id: str) -> RunSummary | None:
        return self.state.runs.get(run_id)

    def latest(self) -> Iterator[RunSummary]:
        return reversed(self.state.runs.values())

    def waiting(self) -> list[RunSummary]:
        return [s for s in self.state.runs.values() if s.status == "waiting"]


class _Parts:
    """The snapshot's parts a read asks for, and the records after it folded in: only the
    summaries of the runs those records touch are read from the snapshot, updated by the
    same fold as the whole projection's (so a record after the snapshot is never missed)."""

    def __init__(self, snapshot: SnapshotFile, records: list[Record]) -> None:
        self.snapshot = snapshot
        runs = {}
        for run in dict.fromkeys(r.run for r in records if r.run is not None):
            summary = snapshot.summary(run)
            if summary is not None:
                runs[run] = summary
        known = set(runs)
        tail = fold_workspace(records, WorkspaceState(runs=runs, last_seq=snapshot.last_seq,
                                                      rejected=dict(snapshot.rejected)))
        self.changed, self.rejected = tail.runs, tail.rejected
        self.started = [run for run in tail.runs if run not in known]

    def summary(self, run_id: str) -> RunSummary | None:
        return self.changed.get(run_id) or self.snapshot.summary(run_id)

    def latest(self) -> Iterator[RunSummary]:
        for run in reversed(self.started):
            yield self.changed[run]
        for summary in self.snapshot.latest():
            yield self.changed.get(summary.id, summary)

    def waiting(self) -> list[RunSummary]:
        found = {s.id: s for s in self.snapshot.waiting()}
        found.update(self.changed)
        return [s for s in found.values() if s.status == "waiting"]


@contextmanager
def summaries(ws: Workspace, *, copy: bool = True) -> Iterator[Summaries]:
    """The summaries from the projection this process holds, else from the parts of the
    snapshot the read needs. With no snapshot to read in parts (none, torn, another
    layout, another store), or many records after it, the projection is folded whole (and
    saved at the end of the command, see :func:`reading`). ``copy=False``: the projection
    held is not copied, for a lookup that holds nothing across an await."""
    snapshot = None if ws.projection_loaded else ws.store.workspace_sections()
    if snapshot is None:
        yield _Held(ws.workspace_state(copy=copy))
        return
    with snapshot:
        ws.log.refresh()
        if snapshot.last_seq > ws.log.last_seq:
            raise LogCorrupted(snapshot.path, 1, f"this snapshot covers the log up to seq "
                               f"{snapshot.last_seq}, but the log ends at seq "
                               f"{ws.log.last_seq}: records were cut off the log; restore it "
                               "from a backup")
        records = list(islice(ws.log.read(snapshot.last_seq + 1), WORKSPACE_SNAPSHOT_EVERY))
        if len(records) >= WORKSPACE_SNAPSHOT_EVERY:
            yield _Held(ws.workspace_state(copy=copy))
        else:
            yield _Parts(snapshot, records)


def run_state(ws: Workspace, run_id: str) -> RunState:
    """The run as it stands; its read stops at its latest record, which the workspace
    projection knows (so a run long ended costs its own records, not the segment after)."""
    with summaries(ws, copy=False) as known:
        summary = known.summary(run_id)
    if summary is None:
        raise NotFound(f"no run '{run_id}'")
    state: RunState = ws.run_state(run_id, last_seq=summary.last_seq or None,
                                   first_seq=summary.first_seq or 1)
    return state


def run(ws: Workspace, run_id: str) -> Run:
    return Run.of(run_state(ws, run_id))


def runs(ws: Workspace, status: str | None = None, limit: int | None = None) -> list[RunListing]:
    """The latest ``limit`` runs (None: every run), oldest first (``status``: only those);
    only the summaries shown are read."""
    found: list[RunListing] = []
    if limit is not None and limit <= 0:
        return found
    with summaries(ws) as known:
        for summary in known.latest():
            if status is None or summary.status == status:
                found.append(RunListing.of(summary))
                if len(found) == limit:
                    break
    found.reverse()
    return found


def inbox(ws: Workspace) -> list[InboxItem]:
    """Everything that waits for the operator, oldest first: gates, escalations, waits, and
    events a triggered playbook rejected (until dismissed)."""
    with summaries(ws) as known:
        items = [InboxItem.rejection(r) for r in known.rejected.values()]
        waiting = known.waiting()
    for summary in waiting:
        state = ws.run_state(summary.id, last_seq=summary.last_seq or None,
                             first_seq=summary.first_seq or 1)
        for pending in state.pending():
            items.append(InboxItem(summary.id, summary.playbook, pending))
    return sorted(items, key=lambda item: int(item.item["seq"]))
