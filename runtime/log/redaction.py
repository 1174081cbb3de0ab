"""Redaction: the text of a forgotten memory item leaves the event log and its snapshots.

The log is append-only for everything but this: ``forget`` is an erasure, and copies of the
item's text sit in records (a ``memory.search`` step's outputs, a run's inputs and outputs,
later steps' results built from them). Each segment that holds the text (in its JSON form)
is rewritten under the log's lock: every record whose line holds it is decoded, the text is
replaced by ``[forgotten]`` in every string of its data, and the record is encoded again
with the same ``seq`` and ``ts`` and a new CRC32. The new segment is written beside the old
one, fsynced and renamed over it (then the folder is fsynced), so a crash leaves either
segment whole. ``runs.idx`` maps runs to segment names, which do not change; a new seal
(size and CRC32) is appended there for each rewritten segment, so the verification at open
checks the new bytes. Snapshots are
derived from the log: one that holds the text is deleted and folded again when next read.
A writer in another process notices the replaced file (its inode changed) under the lock
and reopens it (:meth:`EventLog._catch_up`). ``docs/decisions.md`` says why a rewrite
rather than per-item encryption.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiosrun.runtime.log.eventlog import EventLog, decode, encode
from aiosrun.runtime.log.storage import sign

PLACEHOLDER = "[forgotten]"
MIN_LENGTH = 8  # a shorter text would match words of unrelated records


def redact(log: EventLog, texts: Sequence[str], snapshots: Path | None = None) -> int:
    """Rewrite every record that carries one of ``texts``; returns how many were."""
    needles = sorted({t for t in texts if len(t) >= MIN_LENGTH}, key=len, reverse=True)
    if not needles:
        return 0
    forms = [_json_form(t) for t in needles]
    rewritten = 0
    seals: list[str] = []
    with log._locked():
        log._catch_up()
        for segment in log.segments():
            data = segment.read_bytes()
            if not any(form in data for form in forms):
                continue
            lines = data.splitlines(keepends=True)
            for number, line in enumerate(lines):
                if any(form in line for form in forms):
                    record = decode(line, segment, number + 1)
                    lines[number] = encode(dataclasses.replace(
                        record, data=_scrub(record.data, needles),
                        cause=_scrub(record.cause, needles)))
                    rewritten += 1
            rewritten_data = b"".join(lines)
            _replace(segment, rewritten_data)
            seals.append(sign(f"= {segment.name} {len(rewritten_data)} "
                              f"{zlib.crc32(rewritten_data):08x}") + "\n")
        if seals:  # the later seal of a segment is the one open() verifies
            log._write_index(seals)
        log._catch_up()  # this process's own segment was replaced too
        if snapshots is not None and snapshots.is_dir():
            for path in snapshots.rglob("*"):
                if path.is_file() and any(form in path.read_bytes() for form in forms):
                    path.unlink()
    return rewritten


def _json_form(text: str) -> bytes:
    """The bytes a string has inside a record line (``encode`` writes UTF-8, no ASCII
    escapes)."""
    return json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8")


def _scrub(value: Any, needles: Sequence[str]) -> Any:
    if isinstance(value, str):
        for needle in needles:
            value = value.replace(needle, PLACEHOLDER)
        return value
    if isinstance(value, dict):
        return {_scrub(k, needles): _scrub(v, needles) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, needles) for v in value]
    return value


def _replace(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".redacting")
    with temporary.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
