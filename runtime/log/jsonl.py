"""The embedded store: the JSONL event log in ``.aios/log`` and files beside it.

Leases are an exclusive lock per run that the kernel drops when its process dies, which is
how ``resume`` tells a crashed run from a running one: one byte of ``.aios/runs.lock`` per run
(an open-file-description lock at an offset hashed from the run id), or, where the system has
no such locks, a ``flock`` on ``.aios/runs/ID.lock``.
``aiosrun serve`` holds ``.aios/serve.lock``, so one serve runs per workspace folder and
commands see that it dispatches for them. Snapshots are checksummed files in
``.aios/snapshots``: a run's is JSON, the workspace's a head and blocks (:mod:`.sections`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from aiosrun.dsl.errors import AiosrunError
from aiosrun.runtime.log.eventlog import EventLog
from aiosrun.runtime.log.projections import (
    RunState,
    WorkspaceState,
    check_covered,
    load_run_snapshot,
    load_workspace_snapshot,
    save_snapshot,
)
from aiosrun.runtime.log.tail import LogTail

if TYPE_CHECKING:
    from aiosrun.adapters.effects import FileJournal
    from aiosrun.runtime.log.group_commit import GroupCommit
    from aiosrun.runtime.log.scrub import Scrubber
    from aiosrun.runtime.log.sections import SnapshotFile


def _lease_offset(run_id: str) -> int:
    """The byte of ``runs.lock`` that stands for a run: 62 bits of a hash of its id, so two
    runs share one only by a chance of one in 2**62 per pair."""
    return int.from_bytes(hashlib.blake2b(run_id.encode(), digest_size=8).digest()) >> 2


class ByteLease:
    """An exclusive lock on one byte of ``.aios/runs.lock`` while a process executes a run.

    A lock file per run had to be created for every run, which waited on the file system's
    journal behind the log's fsyncs (0.5-1.7 ms a run under load) and left a file per run
    behind; opening the one existing file and locking a byte costs microseconds. The lock
    belongs to the open file description (``F_OFD_SETLK``), so two leases of one run in one
    process exclude each other as they do across processes."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.offset = _lease_offset(run_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only workspace, a full disk
            raise AiosrunError(f"{path.parent}: cannot take run {run_id}'s lease "
                               f"({exc.strerror or exc}); nothing was recorded") from None

    def _lock(self, kind: int) -> None:
        fcntl.fcntl(self.fd, fcntl.F_OFD_SETLK, struct.pack(_FLOCK, kind, os.SEEK_SET,
                                                            self.offset, 1, 0))

    def try_acquire(self) -> bool:
        try:
            self._lock(fcntl.F_WRLCK)
            return True
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise

    def release(self) -> None:
        self._lock(fcntl.F_UNLCK)
        os.close(self.fd)

    def close(self) -> None:
        os.close(self.fd)

    def discard(self) -> None:
        self.release()


_FLOCK = "hhqqi4x"  # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks)
HAS_BYTE_LEASES = hasattr(fcntl, "F_OFD_SETLK")


class FileLease:
    """An exclusive ``flock`` on a file per run while a process executes it (systems
    without open-file-description locks)."""

    def __init__(self, folder: Path, run_id: str) -> None:
        self.path = folder / f"{run_id}.lock"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only workspace, a full disk
            raise AiosrunError(f"{folder}: cannot take run {run_id}'s lease "
                               f"({exc.strerror or exc}); nothing was recorded") from None

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)

    def close(self) -> None:
        os.close(self.fd)

    def discard(self) -> None:
        self.release()
        self.path.unlink(missing_ok=True)


class ServeLock:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


class JsonlStore:
    """The log, leases and snapshots of one workspace folder's ``.aios``."""

    url = "jsonl"
    shared = False

    def __init__(self, state_dir: Path, log: EventLog) -> None:
        self.state_dir = state_dir
        self.log = log
        self.snapshots = state_dir / "snapshots"
        self._commits: GroupCommit | None = None

    async def durable(self) -> None:
        """Share one fsync in a worker thread with every task that waits meanwhile
        (:mod:`.group_commit`)."""
        if self._commits is None:
            from aiosrun.runtime.log.group_commit import GroupCommit

            self._commits = GroupCommit(self.log)
        await self._commits.sync()

    def tail(self, after_seq: int = 0) -> LogTail:
        return LogTail(self.log.folder, after_seq)

    def lease(self, run_id: str) -> ByteLease | FileLease:
        if HAS_BYTE_LEASES:
            return ByteLease(self.state_dir / "runs.lock", run_id)
        return FileLease(self.state_dir / "runs", run_id)

    def register_serve(self) -> ServeLock | None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_dir / "serve.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return ServeLock(fd)

    def serve_running(self) -> bool:
        path = self.state_dir / "serve.lock"
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def _path(self, run_id: str | None) -> Path:
        if run_id is None:
            return self.snapshots / "workspace.json"
        return self.snapshots / "runs" / f"{run_id}.json"

    def load_run_snapshot(self, run_id: str) -> RunState | None:
        return load_run_snapshot(self._path(run_id))

    def save_run_snapshot(self, state: RunState) -> None:
        save_snapshot(self._path(state.id), state)

    def has_run_snapshot(self, run_id: str) -> bool:
        return self._path(run_id).exists()

    @property
    def _sections(self) -> Path:
        return self.snapshots / "workspace.snapshot"

    def workspace_sections(self) -> SnapshotFile | None:
        """The workspace snapshot opened for reading a part of it (the read commands)."""
        from aiosrun.runtime.log.sections import open_snapshot

        return open_snapshot(self._sections)

    def load_workspace_snapshot(self) -> WorkspaceState | None:
        """The whole projection; one in the layout before :mod:`.sections` (one JSON
        document, ``workspace.json``) is read once and saved again in the new one."""
        from aiosrun.runtime.log.sections import open_snapshot, write

        opened = open_snapshot(self._sections)
        if opened is not None:
            with opened:
                return opened.state()
        state = load_workspace_snapshot(self._path(None))
        if state is not None and not self.log.read_only and write(self._sections, state):
            with contextlib.suppress(OSError):
                self._path(None).unlink()
        return state

    def save_workspace_snapshot(self, state: WorkspaceState) -> None:
        from aiosrun.runtime.log.sections import write

        if write(self._sections, state):
            with contextlib.suppress(OSError):
                self._path(None).unlink()  # an earlier layout's

    def clear_snapshots(self) -> None:
        shutil.rmtree(self.snapshots, ignore_errors=True)

    def check_covered(self, snapshot: RunState | WorkspaceState | None,
                      run_id: str | None = None) -> None:
        if snapshot is not None:
            self.log.refresh()
            check_covered(self._path(run_id), snapshot, self.log.last_seq)

    def journal(self, name: str) -> FileJournal:
        from aiosrun.adapters.effects import FileJournal

        return FileJournal(self.state_dir / f"{name}.jsonl")

    def check_index(self) -> None:
        if self.log.index_problem is not None:
            raise self.log.index_problem

    def redact(self, scrubber: Scrubber) -> int:
        """The log's records (the erasure deletes the snapshot files that hold a copy)."""
        from aiosrun.runtime.log.redaction import redact

        return redact(self.log, scrubber)

    def close(self) -> None:
        self.log.close()
