"""The effects ledger adapters share: intent and done records per idempotency key.

An adapter records *intent* (durably) before an effect and *done* (with the result) after
it. A retry or a resume with the same key finds *done* and returns the result without acting
again; finding only *intent*, the adapter decides from the world whether the effect happened
(``files.append`` looks at the file). Held under an exclusive lock while used, so several
processes never act on one key at once.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class EffectsLedger:
    """Intent/done records per idempotency key, held under an exclusive lock while used."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self._fd: int | None = None

    def __enter__(self) -> EffectsLedger:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        for entry in self._read():
            current = self.entries.setdefault(entry["key"], {})
            current.update(entry)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)

    def _read(self) -> Iterator[dict[str, Any]]:
        with open(self.path, "rb") as handle:
            for line in handle:
                if line.endswith(b"\n"):
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue  # a torn ledger line: the effect is re-checked, not lost

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
        assert self._fd is not None
        os.write(self._fd, (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))
        os.fsync(self._fd)
        self.entries.setdefault(key, {}).update(entry)

