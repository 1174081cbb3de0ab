"""Erasure of forgotten memory texts from everything under ``.aios/``.

``forget`` (``aiosrun memory forget``, the Engine, a playbook's ``memory.forget`` step)
erases items from their shard; this module takes their texts out of the rest:

- the event log, rewritten (:mod:`aiosrun.runtime.log.redaction`), on the thread that
  appends to it: a playbook's step calls the store from a worker thread, and the log
  object is not thread-safe, so the rewrite is handed to the run's trio thread;
- snapshots and cached model answers that hold a copy, deleted (both are derived:
  folded again, asked again); messages in the outbox (``email.send`` without SMTP)
  rewritten, headers and text parts, under the same file name (the adapter's idempotency);
- this process: its workspace projection is folded again, and the masker replaces the
  texts in whatever it records or saves afterwards (a running playbook still holds earlier
  outputs in memory).

``forget.pending`` (mode 0600) lists the texts from before the shards are touched until
all of it is done; the next open of the workspace finishes an erasure a crash interrupted.
It is the only file that holds the texts meanwhile, and it is removed at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiosrun.runtime.log.scrub import Scrubber

PENDING = "forget.pending"
T = TypeVar("T")


class Erasure:
    """One workspace's erasure steps, as the memory store calls them."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @property
    def pending(self) -> Path:
        return Path(self.ws.state_dir) / PENDING

    def begin(self, texts: Sequence[str]) -> None:
        """Note the texts durably before anything is erased."""
        known = _read(self.pending)
        path = self.pending
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"texts": list(dict.fromkeys([*known, *texts]))}, out,
                      ensure_ascii=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)

    def complete(self, texts: Sequence[str]) -> int:
        """Take the texts out of the log, the derived files and this process; returns how
        many records were rewritten."""
        return _on_log_thread(lambda: self._complete(texts))

    def _complete(self, texts: Sequence[str]) -> int:
        from aiosrun.runtime.log.redaction import redact

        ws = self.ws
        everything = list(dict.fromkeys([*_read(self.pending), *texts]))
        scrubber = Scrubber(everything)
        ws.masker.forget(scrubber)  # first: what this process records from now on
        count = redact(ws.log, scrubber)
        for folder in (ws.snapshots, Path(ws.state_dir) / "cache" / "models"):
            _delete_holders(folder, scrubber)
        _scrub_outbox(Path(ws.state_dir) / "outbox", scrubber)
        ws.forgot()  # the projection this process keeps is folded again
        self.pending.unlink(missing_ok=True)
        return count


def resume(ws: Any) -> None:
    """Finish an erasure that a crash interrupted (at the next open of the workspace)."""
    path = Path(ws.state_dir) / PENDING
    texts = _read(path)
    if not texts:
        path.unlink(missing_ok=True)
        return
    store = ws.memory()  # a shard's own forget.pending is finished when it opens
    store.scrub_copies(Scrubber(texts))
    Erasure(ws).complete(texts)


def _read(path: Path) -> list[str]:
    try:
        return [str(t) for t in json.loads(path.read_text("utf-8"))["texts"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _delete_holders(folder: Path, scrubber: Scrubber) -> None:
    if not folder.is_dir():
        return
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if scrubber.may_hold(data) and _holds(data, scrubber):
            path.unlink(missing_ok=True)


def _scrub_outbox(folder: Path, scrubber: Scrubber) -> None:
    import email
    import email.policy
    from email.message import EmailMessage

    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), _class=EmailMessage,
                                           policy=email.policy.default)
        changed = False
        for name, value in list(message.items()):
            scrubbed = scrubber.text(str(value))
            if scrubbed != str(value):
                message.replace_header(name, scrubbed)
                changed = True
        for part in message.walk():
            if part.get_content_maintype() == "text" and isinstance(part, EmailMessage):
                content = part.get_content()
                scrubbed = scrubber.text(content)
                if scrubbed != content:
                    part.set_content(scrubbed, subtype=part.get_content_subtype())
                    changed = True
        if changed:
            temporary = path.with_suffix(".tmp")
            temporary.write_bytes(bytes(message))
            os.replace(temporary, path)


def _holds(data: bytes, scrubber: Scrubber) -> bool:
    text = data.decode("utf-8", "replace")
    try:  # a snapshot: a checksum line, then JSON; a cache entry: JSON
        return scrubber.holds(json.loads(text.partition("\n")[2] or text))
    except ValueError:
        try:
            return scrubber.holds(json.loads(text))
        except ValueError:
            return scrubber.text(text) != text


def _on_log_thread(work: Callable[[], T]) -> T:
    """Run ``work`` on the trio thread when called from one of its worker threads (a
    playbook's step), else here."""
    import trio

    if not trio.lowlevel.in_trio_run():
        try:
            trio.from_thread.check_cancelled()
        except RuntimeError:  # not a trio worker thread: nothing else appends here
            return work()
        return trio.from_thread.run_sync(work)
    return work()
