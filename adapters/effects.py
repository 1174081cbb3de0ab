"""The effects ledger adapters share: intent and done records per idempotency key.

An adapter records *intent* (durably) before an effect and *done* (with the result) after
it. A retry or a resume with the same key finds *done* and returns the result without acting
again; finding only *intent*, the adapter decides from the world whether the effect happened
(``files.append`` looks at the file). Held under an exclusive lock while used, so several
processes never act on one key at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from .base import CallContext, Journal, TransientError


class LedgerFull(TransientError):
    """A ledger line could not be written in full (a full disk): nothing of it was kept, so
    the effect it guards did not happen and a retry or a resume does it."""


def open_ledger(path: Path) -> int:
    """Open and lock a JSON-lines ledger; a torn last line (a write cut by a crash) is cut
    off, so the next line does not join it and make both unreadable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    size = os.fstat(fd).st_size
    if size:
        with open(path, "rb") as handle:
            data = handle.read()
        if not data.endswith(b"\n"):
            os.ftruncate(fd, data.rfind(b"\n") + 1)
    return fd


def append_line(fd: int, path: Path, entry: dict[str, Any]) -> None:
    """Append one JSON line durably and in full (``os.write`` may write less than asked), or
    cut the file back to where it was and raise :class:`LedgerFull`."""
    payload = memoryview((json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))
    size = os.fstat(fd).st_size
    try:
        while payload:
            written = os.write(fd, payload)
            if written <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            payload = payload[written:]
        os.fsync(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        reason = "no space left on device" if exc.errno in (errno.ENOSPC, errno.EDQUOT) \
            else exc.strerror or str(exc)
        raise LedgerFull(f"{path}: {reason}, nothing was recorded") from None


class FileJournal:
    """A journal as a JSON-lines file under ``.aios/`` (the JSONL store's), ``flock``ed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> list[dict[str, Any]]:
        self._fd = open_ledger(self.path)
        entries = []
        with open(self.path, "rb") as handle:
            for line in handle:
                if line.endswith(b"\n"):
                    try:
                        entries.append(json.loads(line))
                    except ValueError:
                        continue  # a torn ledger line: the effect is re-checked, not lost
        return entries

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def append(self, entry: dict[str, Any]) -> None:
        assert self._fd is not None
        append_line(self._fd, self.path, entry)


def journal(ctx: CallContext, name: str) -> Journal:
    """The store's journal ``name`` (``effects/files``), or without a store the file
    ``.aios/NAME.jsonl``."""
    if ctx.journal is not None:
        return ctx.journal(name)
    return FileJournal(ctx.state_dir / f"{name}.jsonl")


class EffectsLedger:
    """Intent/done records per idempotency key, held under an exclusive lock while used."""

    def __init__(self, source: Path | Journal) -> None:
        self.journal = FileJournal(source) if isinstance(source, Path) else source
        self.entries: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> EffectsLedger:
        for entry in self.journal.__enter__():
            current = self.entries.setdefault(entry["key"], {})
            current.update(entry)
        return self

    def __exit__(self, *exc: object) -> None:
        self.journal.__exit__(*exc)

    def done(self, key: str) -> dict[str, Any] | None:
        entry = self.entries.get(key)
        if entry and entry.get("state") == "done":
            result: dict[str, Any] = entry["result"]
            return result
        return None

    def intent(self, key: str) -> dict[str, Any] | None:
        entry = self.entries.get(key)
        return entry if entry and entry.get("state") == "intent" else None

    def record(self, key: str, state: str, **fields: Any) -> None:
        entry = {"key": key, "state": state, **fields}
        self.journal.append(entry)
        self.entries.setdefault(key, {}).update(entry)

