"""``files``: read and write files inside the workspace, each effect once per idempotency key.

Every write goes through an effects ledger (``.aios/effects/files.jsonl``, under a file lock):
an *intent* record (with the file size before) is made durable before the effect, a *done*
record after it. A retry or a resume with the same key finds *done* and returns the recorded
result; finding only *intent*, it looks at the file to see whether the effect happened before
the crash, so ``files.append`` never appends twice and never loses the line.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from .base import Action, Adapter, CallContext, PermanentError
from .effects import EffectsLedger

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
        target = resolve_inside(ctx.workspace, str(args["path"]), ctx.state_dir,
                                writing=action in ("write", "append", "delete"))
        shown = str(args["path"])
        if action == "read":
            return {"content": _read_text(target, shown)}
        if action == "read_csv":
            rows = list(csv.DictReader(io.StringIO(_read_text(target, shown))))
            return {"rows": rows, "count": len(rows)}
        with EffectsLedger(ctx.state_dir / "effects" / "files.jsonl") as ledger:
            done = ledger.done(ctx.idempotency_key)
            if done is not None:
                return done
            if action == "append":
                result = _append(ledger, ctx.idempotency_key, target, shown, str(args["line"]))
            elif action == "write":
                data = str(args["content"]).encode("utf-8")
                target.parent.mkdir(parents=True, exist_ok=True)
                temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                temporary.write_bytes(data)
                _fsync_file(temporary)
                os.replace(temporary, target)
                result = {"path": shown, "bytes": len(data)}
            else:
                existed = target.exists()
                target.unlink(missing_ok=True)
                result = {"deleted": existed}
            ledger.record(ctx.idempotency_key, "done", result=result)
            return result


def resolve_inside(workspace: Path, relative: str, state_dir: Path, *, writing: bool) -> Path:
    """The absolute path of ``relative`` if it stays inside the workspace (symlinks followed),
    else a :class:`PermanentError`; refuses writes into the runtime's own state folder."""
    if Path(relative).is_absolute():
        raise PermanentError(f"'{relative}': absolute paths are refused; give a path relative "
                             "to the workspace")
    root = workspace.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise PermanentError(f"'{relative}' is outside the workspace; files stay inside it")
    if writing and target.is_relative_to(state_dir.resolve()):
        raise PermanentError(f"'{relative}' is aiosrun's own state; playbooks cannot write it")
    return target


def _read_text(target: Path, shown: str) -> str:
    try:
        return target.read_text("utf-8")
    except FileNotFoundError:
        raise PermanentError(f"'{shown}' does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PermanentError(f"cannot read '{shown}': {exc}") from None


def _append(ledger: EffectsLedger, key: str, target: Path, shown: str, line: str) -> dict[str, Any]:
    data = (line + "\n").encode("utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    intent = ledger.intent(key)
    if intent is not None and intent.get("path") == str(target):
        offset = int(intent["offset"])
        size = target.stat().st_size if target.exists() else 0
        with open(target, "rb") as handle:
            handle.seek(offset)
            present = handle.read(len(data))
        if present == data:  # the crash came after the append: it happened, once
            return {"path": shown}
        if size < offset + len(data) and data.startswith(present):
            os.truncate(target, offset)  # a torn append with nothing after it: redo it
    else:
        offset = target.stat().st_size if target.exists() else 0
        ledger.record(key, "intent", path=str(target), offset=offset)
    with open(target, "ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return {"path": shown}


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
