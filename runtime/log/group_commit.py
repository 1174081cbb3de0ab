"""One fsync for everyone waiting: durability without blocking the event loop.

A long-lived process (``serve --http``, a script driving the Engine) answers many callers
that each need "my records are durable" before they reply: a sync run's end, a webhook's
acknowledgement. An ``fsync`` costs milliseconds; made inline it stops every other run and
request in the process, and made per caller it is paid once each. Here it runs in a worker
thread on a duplicate of the segment's descriptor while the loop goes on appending, and every
caller whose records it covers shares it: those who arrive during one fsync wait for the
next, which covers them all.
"""

from __future__ import annotations

import os

import trio
from aiosrun.runtime.log.eventlog import EventLog
from aiosrun.runtime.log.storage import StorageError


class GroupCommit:
    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._lock = trio.Lock()
        self.in_flight = False

    async def sync(self) -> None:
        """Return once every record this process appended before the call is durable;
        raises :class:`~aiosrun.runtime.log.storage.StorageError` when the disk refused."""
        target = self.log.written_seq
        async with self._lock:
            if self.log.durable_seq >= target:
                return
            claim = self.log.claim_sync()
            if claim is None:
                return
            fd, seq, segment = claim
            self.in_flight = True
            try:
                await trio.to_thread.run_sync(os.fsync, fd)
            except OSError as exc:
                self.log.failed_sync = StorageError(
                    f"{segment}: the disk did not confirm what was written (fsync: "
                    f"{exc.strerror or exc}); this process records nothing more: restart it, "
                    "and `aiosrun resume` finishes what was started")
                raise self.log.failed_sync from None
            finally:
                os.close(fd)
                self.in_flight = False
            self.log.synced(seq)
