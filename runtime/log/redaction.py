"""Redaction: the copies of a forgotten memory item's text leave the event log.

The log is append-only for everything but this: ``forget`` is an erasure, and copies of the
item's text sit in records (a ``memory.search`` step's outputs, a run's inputs and outputs,
later steps' results built from them, escaped or cut: :mod:`.scrub` says what a copy is).
Under the log's lock, every record whose line may hold one is decoded, scrubbed (its
structural fields kept) and encoded again with the same ``seq`` and ``ts`` and a new CRC32.

A crash must leave the log whole, so the rewrite is a small two-phase commit:

1. each changed segment is written beside itself as ``NAME.rewriting`` and fsynced;
2. ``rewrite.commit`` names them with the size they were made from (written atomically:
   the commit point);
3. :meth:`EventLog.complete_rewrite` renames each over its segment, appends its new seal
   (size and CRC32) to ``runs.idx`` and removes the commit file.

A crash before 2 leaves the old segments (the next open drops the ``.rewriting`` files);
after it, the next open runs step 3 again (it is idempotent, and carries over lines another
writer appended to an old file meanwhile). Either way the redaction itself is redone while
``.aios/forget.pending`` lists the texts (:mod:`aiosrun.runtime.erasure`). ``runs.idx`` maps
runs to segment names, which do not change. A writer in another process notices a replaced
file (its inode changed) under the lock and reopens it (:meth:`EventLog._catch_up`).
``docs/decisions.md`` says why a rewrite rather than per-item encryption.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

from aiosrun.runtime.log.eventlog import _REWRITE, EventLog, decode, encode
from aiosrun.runtime.log.scrub import PLACEHOLDER, Scrubber

__all__ = ["PLACEHOLDER", "redact"]


def redact(log: EventLog, texts: Sequence[str] | Scrubber) -> int:
    """Rewrite every record that holds a copy of one of ``texts``; returns how many."""
    scrubber = texts if isinstance(texts, Scrubber) else Scrubber(texts)
    if not scrubber:
        return 0
    rewritten = 0
    plan: dict[str, int] = {}
    with log._locked():
        log._catch_up()
        for segment in log.segments():
            data = segment.read_bytes()
            if not scrubber.may_hold(data):
                continue
            data = data[: data.rfind(b"\n") + 1]  # a torn tail stays for open() to cut
            lines = data.splitlines(keepends=True)
            changed = 0
            for number, line in enumerate(lines):
                if scrubber.may_hold(line):
                    record = decode(line, segment, number + 1)
                    scrubbed = scrubber.data(record.data, record=True)
                    if scrubbed != record.data:
                        lines[number] = encode(dataclasses.replace(record, data=scrubbed))
                        changed += 1
            if changed:
                _write_synced(segment.with_suffix(".rewriting"), b"".join(lines))
                plan[segment.name] = len(data)
                rewritten += changed
        if plan:
            _fsync_dir(log.folder)
            commit = log.folder / _REWRITE
            _write_synced(commit.with_suffix(".tmp"), json.dumps(plan).encode())
            os.replace(commit.with_suffix(".tmp"), commit)  # the commit point
            _fsync_dir(log.folder)
            log.complete_rewrite(plan)
        log._catch_up()  # this process's own segment may have been replaced
    return rewritten


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
