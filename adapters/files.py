"""``files``: read and write files inside the workspace, each effect once per idempotency key.

Paths are opened beneath the workspace without following symlinks, and what runs or governs
the workspace cannot be written (see :mod:`.beneath`).

Every write goes through an effects ledger (``.aios/effects/files.jsonl``, under a file lock):
an *intent* record (with the file size before) is made durable before the effect, a *done*
record after it. A retry or a resume with the same key finds *done* and returns the recorded
result; finding only *intent*, it looks at the file to see whether the effect happened before
the crash, so ``files.append`` never appends twice and never loses the line. That look is
taken for each key before another key appends to the same file, so it is decided by key.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from .base import Action, Adapter, CallContext, PermanentError, TransientError
from .beneath import (
    check_writable,
    delete,
    open_file,
    parts_of,
    read_bytes,
    write_atomically,
)
from .effects import EffectsLedger, journal

_PATH = {"type": "string", "minLength": 1, "description": "Relative to the workspace."}


def _schema(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props,
            "additionalProperties": False}


class FilesAdapter(Adapter):
    name = "files"
    description = "Files inside the workspace; writes happen once per idempotency key."
    actions: ClassVar[Mapping[str, Action]] = {
        "write": Action("Writes a whole file (atomically).",
                        _schema(["path", "content"], path=_PATH, content={"type": "string"}),
                        compensation="delete"),
        "append": Action("Appends a line, once per idempotency key.",
                         _schema(["path", "line"], path=_PATH, line={"type": "string"})),
        "read": Action("Reads a text file.", _schema(["path"], path=_PATH)),
        "read_csv": Action("Reads a CSV file with a header row into a list of rows.",
                           _schema(["path"], path=_PATH)),
        "delete": Action("Deletes a file; deleted is false when it was not there.",
                         _schema(["path"], path=_PATH)),
    }

    async def call(self, action: str, args: Mapping[str, Any],
                   ctx: CallContext) -> Mapping[str, Any]:
        shown = str(args["path"])
        parts = parts_of(shown)
        if action in ("write", "append", "delete"):
            check_writable(parts, shown, ctx.state_dir.name)
        root = ctx.workspace
        if action == "read":
            return {"content": _read_text(root, parts, shown)}
        if action == "read_csv":
            rows = list(csv.DictReader(io.StringIO(_read_text(root, parts, shown))))
            return {"rows": rows, "count": len(rows)}
        with EffectsLedger(journal(ctx, "effects/files")) as ledger:
            done = ledger.done(ctx.idempotency_key)
            if done is not None:
                return done
            if action == "append":
                result = _append(ledger, ctx.idempotency_key, root, parts, shown,
                                 str(args["line"]))
            elif action == "write":
                data = str(args["content"]).encode("utf-8")
                write_atomically(root, parts, shown, data)
                result = {"path": shown, "bytes": len(data)}
            else:
                result = {"deleted": delete(root, parts, shown)}
            ledger.record(ctx.idempotency_key, "done", result=result)
            return result


def _read_text(root: Path, parts: list[str], shown: str) -> str:
    try:
        return read_bytes(root, parts, shown).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PermanentError(f"cannot read '{shown}': {exc}") from None


def _append(ledger: EffectsLedger, key: str, root: Path, parts: list[str], shown: str,
            line: str) -> dict[str, Any]:
    """Append once per key. Whether an interrupted append happened is decided for that key
    (by its own intent) before any other key appends to the file, so two keys appending the
    same line never pass for each other."""
    data = (line + "\n").encode("utf-8")
    where = "/".join(parts)
    fd = open_file(root, parts, shown, os.O_RDWR | os.O_APPEND | os.O_CREAT,
                   create_parents=True)
    try:
        for other, entry in list(ledger.entries.items()):
            if other != key and entry.get("state") == "intent" and entry.get("path") == where:
                _settle(ledger, other, entry, fd, shown)
        intent = ledger.intent(key)
        if intent is not None and intent.get("path") == where and \
                _settle(ledger, key, intent, fd, shown):
            return {"path": shown}
        offset = os.fstat(fd).st_size
        ledger.record(key, "intent", path=where, offset=offset, length=len(data),
                      sha256=hashlib.sha256(data).hexdigest())
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
        except OSError as exc:
            os.ftruncate(fd, offset)
            raise TransientError(f"'{shown}': cannot append ({exc.strerror or exc}); nothing "
                                 "was appended") from None
    finally:
        os.close(fd)
    return {"path": shown}


def _settle(ledger: EffectsLedger, key: str, intent: Mapping[str, Any], fd: int,
            shown: str) -> bool:
    """Decide whether the append ``intent`` stands for happened (it is the last thing done
    to the file through the ledger, so its offset holds its line or nothing of its own);
    records the answer and returns it. A torn append is cut off to be done again."""
    offset, length = int(intent["offset"]), int(intent.get("length", 0))
    size = os.fstat(fd).st_size
    present = os.pread(fd, length, offset) if size > offset else b""
    happened = len(present) == length and \
        hashlib.sha256(present).hexdigest() == intent.get("sha256")
    if happened:
        ledger.record(key, "done", result={"path": shown})
        return True
    if size <= offset + length and size > offset:
        os.ftruncate(fd, offset)  # a torn append with nothing after it: undo the part
    ledger.record(key, "undone")
    return False
