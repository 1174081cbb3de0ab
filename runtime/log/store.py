"""The store interface: what the Engine and the interpreter need from a workspace's state.

Two implementations (DESIGN section 15): the JSONL log in ``.aios/`` (:mod:`.jsonl`, the
embedded default) and PostgreSQL (:mod:`.postgres`, ``store: {url: ...}`` in ``aios.yaml``),
where several ``aiosrun serve`` processes share one state. Both give the same guarantees:
``seq`` contiguous across processes, a batch appended whole or not at all, a guard asked
under the store's lock once every other process's appends are seen, checksums verified on
every read, one executor per run at a time.

The log part (:class:`EventStore`) is what :class:`~aiosrun.runtime.log.eventlog.EventLog`
already was; the rest (leases, snapshots, tails, serve registration, redaction) is what
lived beside it as files and now moves with the store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from aiosrun.adapters.base import Journal
from aiosrun.runtime.log.eventlog import FsyncPolicy, LogCorrupted, NewEvent, Record
from aiosrun.runtime.log.projections import RunState, WorkspaceState
from aiosrun.runtime.log.scrub import Scrubber

if TYPE_CHECKING:
    from aiosrun.runtime.log.sections import SnapshotFile


class EventStore(Protocol):
    """The append-only log of records: the single source of truth of a workspace."""

    last_seq: int  # the newest seq this process has seen
    repaired: str | None  # what opening repaired (a torn tail), for the caller to report
    read_only: bool
    index_problem: LogCorrupted | None  # a damaged run index: readers that use it stop
    fsync_policy: FsyncPolicy
    fsync_hook: Callable[[], None] | None  # ``group``: told when an fsync is due

    def append(self, event: NewEvent, *, durable: bool = True) -> Record: ...

    def append_many(self, events: Sequence[NewEvent],
                    guard: Callable[[], bool] | None = None, *,
                    durable: bool = True) -> list[Record]:
        """All of ``events`` as one batch, or nothing; with ``guard``, asked under the
        store's lock once this process has seen every other's appends: False appends
        nothing and returns ``[]``. ``durable=False``: the next durable append may make
        it durable (a ``StepStarted`` a crash would only repeat)."""
        ...

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Hold the store across a check and the appends it decides."""
        ...

    def refresh(self) -> None:
        """Catch up with what other processes appended."""
        ...

    def sync(self) -> None:
        """Make everything appended so far durable."""
        ...

    def close(self) -> None: ...

    def read(self, from_seq: int = 1, *, skim: bool = False) -> Iterator[Record]:
        """Every record from ``from_seq`` on, verified (raises :class:`LogCorrupted`);
        ``skim``: a large playbook version's IR left unparsed (runtime/log/skim.py)."""
        ...

    def read_run(self, run: str, from_seq: int = 1,
                 until_seq: int | None = None) -> Iterator[Record]:
        """One run's records; ``until_seq``: none after it is wanted (a bound the caller
        knows, so the read stops there)."""
        ...

    def runs(self) -> list[str]:
        """The run index: every run with records, in order of its first record."""
        ...

    def has_run(self, run: str) -> bool: ...

    def rebuild_index(self) -> int:
        """Rebuild the run index from the records; returns the number of runs."""
        ...


class Tail(Protocol):
    """Following the log: each poll returns the complete records appended since the last."""

    after_seq: int

    def poll(self) -> list[Record]: ...


class RunLease(Protocol):
    """The right to execute one run; another process cannot take it while it is held, and
    it ends by itself when its holder dies (a dropped ``flock``, an expired lease row)."""

    def try_acquire(self) -> bool: ...

    def release(self) -> None:
        """Give the lease up (after :meth:`try_acquire` returned True)."""
        ...

    def close(self) -> None:
        """Forget a lease that was never acquired."""
        ...

    def discard(self) -> None:
        """Release and remove a lease of a run that was never recorded."""
        ...


class ServeRegistration(Protocol):
    """What ``aiosrun serve`` holds while it runs: commands then leave dispatch to it."""

    def release(self) -> None: ...


class Store(Protocol):
    """A workspace's whole state: the log, and what is kept beside it."""

    @property
    def log(self) -> EventStore: ...

    @property
    def url(self) -> str:
        """Where it lives, for messages (never with a password)."""
        ...

    @property
    def shared(self) -> bool:
        """Whether several serve processes may share it (PostgreSQL)."""
        ...

    async def durable(self) -> None:
        """Make this process's appends durable without blocking the event loop."""
        ...

    def tail(self, after_seq: int = 0) -> Tail: ...

    def lease(self, run_id: str) -> RunLease: ...

    def register_serve(self) -> ServeRegistration | None:
        """Register this process as a ``serve``; None when the store allows only one and
        another holds it."""
        ...

    def serve_running(self) -> bool:
        """Whether some ``aiosrun serve`` dispatches events and timers for this state."""
        ...

    def load_run_snapshot(self, run_id: str) -> RunState | None: ...

    def save_run_snapshot(self, state: RunState) -> None: ...

    def has_run_snapshot(self, run_id: str) -> bool: ...

    def workspace_sections(self) -> SnapshotFile | None:
        """The workspace snapshot opened to read a part of it (one run's summary, the latest
        runs, the waiting ones) without the rest; None: load the whole projection."""
        ...

    def load_workspace_snapshot(self) -> WorkspaceState | None: ...

    def save_workspace_snapshot(self, state: WorkspaceState) -> None: ...

    def clear_snapshots(self) -> None: ...

    def check_covered(self, snapshot: RunState | WorkspaceState | None,
                      run_id: str | None = None) -> None:
        """Raise :class:`LogCorrupted` when a snapshot covers seqs the log no longer has."""
        ...

    def journal(self, name: str) -> Journal:
        """The journal ``name`` (an adapter's effects ledger), shared by every process of
        the store."""
        ...

    def check_index(self) -> None:
        """``doctor``: raise :class:`LogCorrupted` when the run index is damaged."""
        ...

    def redact(self, scrubber: Scrubber) -> int:
        """Rewrite every record that holds a copy of a forgotten text (``forget``); returns
        how many. The store's snapshots that hold one are dropped with them."""
        ...

    def close(self) -> None: ...


def snapshot_key(run_id: str | None) -> str:
    """The name a snapshot is kept under: ``workspace`` or ``runs/ID``."""
    return "workspace" if run_id is None else f"runs/{run_id}"


def describe(settings: Mapping[str, Any]) -> str:
    """``jsonl`` or the PostgreSQL URL of ``store:`` (for messages; no password)."""
    url = settings.get("url") if isinstance(settings, Mapping) else None
    return str(url) if url else "jsonl"
