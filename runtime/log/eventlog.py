"""The append-only event log: the single source of truth of a workspace.

Records are JSON lines in ``.aios/log/NNNNNNNNNNNN.jsonl`` segments (named by their first
``seq``), each ending in a CRC32 of the rest of the line. Appends take an exclusive ``flock``
for the duration of one batch, so several processes (a run, an ``approve``, a ``cancel``) can
write to one workspace without interleaving or losing records; each batch first catches up
with what others appended, so ``seq`` stays contiguous.

Durability: ``always`` fsyncs every batch; ``group`` (the default) fsyncs at most once per
window while appends flow, and on :meth:`EventLog.sync`/:meth:`EventLog.close`. Bytes reach
the kernel at once either way, so a killed process loses nothing; the window only bounds what
a power cut could take. A torn last line is cut off at open (and reported); a corrupt line
anywhere else stops every reader with :class:`LogCorrupted` naming the file and line.

``runs.idx`` maps each run to the segments that hold its records, so one run's history is
read without scanning the whole log. It is derived: ``@ SEQ`` watermark lines (written at
close and rotation) say how far it is complete, and what lies beyond is re-indexed at open.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiosrun.dsl.errors import AiosrunError

FsyncPolicy = Literal["always", "group"]
_CRC_SUFFIX = len(',"crc":"') + 8 + len('"}')
_INDEX = "runs.idx"
_LOCK = "lock"


class LogError(AiosrunError):
    """Something is wrong with the event log itself."""


class LogCorrupted(LogError):
    def __init__(self, file: Path, line: int, reason: str) -> None:
        self.file, self.line = file, line
        super().__init__(f"{file}:{line}: corrupt event log record ({reason}); the log is the "
                         "source of truth, so nothing is skipped: restore the file from a "
                         "backup or cut the log before this line by hand")


class LogLocked(LogError):
    pass


@dataclass(frozen=True)
class Record:
    seq: int
    ts: str
    type: str
    data: Mapping[str, Any]
    run: str | None = None
    cause: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "ts": self.ts, "type": self.type}
        if self.run is not None:
            out["run"] = self.run
        if self.cause is not None:
            out["cause"] = self.cause
        out["data"] = self.data
        return out


@dataclass(frozen=True)
class NewEvent:
    type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    run: str | None = None
    cause: int | None = None


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_ts(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode(record: Record) -> bytes:
    body = json.dumps(record.to_json(), separators=(",", ":"), ensure_ascii=False)
    crc = zlib.crc32(body.encode("utf-8"))
    return (body[:-1] + f',"crc":"{crc:08x}"}}\n').encode("utf-8")


def decode(line: bytes, file: Path, number: int) -> Record:
    text = line.decode("utf-8", errors="replace").rstrip("\n")
    if len(text) <= _CRC_SUFFIX or not text.endswith('"}'):
        raise LogCorrupted(file, number, "no checksum")
    body = text[:-_CRC_SUFFIX] + "}"
    try:
        expected = int(text[-_CRC_SUFFIX + 8:-2], 16)
    except ValueError:
        raise LogCorrupted(file, number, "unreadable checksum") from None
    if zlib.crc32(body.encode("utf-8")) != expected:
        raise LogCorrupted(file, number, "checksum mismatch")
    try:
        obj = json.loads(body)
        return Record(obj["seq"], obj["ts"], obj["type"], obj.get("data", {}), obj.get("run"),
                      obj.get("cause"))
    except (ValueError, KeyError, TypeError) as exc:
        raise LogCorrupted(file, number, f"not a record: {exc}") from None


def line_seq(line: bytes) -> int:
    """The seq of an encoded line, read from its fixed prefix ``{"seq":N,``."""
    end = line.find(b",", 7)
    try:
        return int(line[7:end])
    except ValueError:
        return 0  # not a well-formed line: let decode() report it


class EventLog:
    """One workspace's log. Not thread-safe; one instance per process."""

    def __init__(self, folder: Path, *, fsync: FsyncPolicy = "group",
                 group_window: float = 0.005, segment_bytes: int = 64 * 1024 * 1024,
                 lock_timeout: float = 30.0,
                 now: Callable[[], dt.datetime] = utc_now) -> None:
        self.folder = folder
        self.fsync_policy = fsync
        self.group_window = group_window
        self.segment_bytes = segment_bytes
        self.lock_timeout = lock_timeout
        self.now = now
        self.last_seq = 0
        self.repaired: str | None = None  # what open() cut off, for the caller to report
        self._segment: Path | None = None
        self._size = 0
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._dirty = False
        self._last_fsync = 0.0
        self._index: dict[str, list[str]] = {}
        self._indexed_seq = 0
        self._index_offset = 0

    # ---- opening ------------------------------------------------------------

    def open(self) -> EventLog:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        with self._locked():
            self._recover()
            self._load_index()
        return self

    def __enter__(self) -> EventLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def segments(self) -> list[Path]:
        return sorted(self.folder.glob("*.jsonl"))

    def _recover(self) -> None:
        segments = self.segments()
        if not segments:
            self._start_segment(1)
            return
        last = segments[-1]
        data = last.read_bytes()
        cut = len(data)
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            self.repaired = (f"{last}: cut off a torn last record ({len(data) - cut} bytes "
                             "without a line end), left by an interrupted write")
            with open(last, "r+b") as handle:
                handle.truncate(cut)
                os.fsync(handle.fileno())
        body = data[:cut]
        if body:
            start = body.rfind(b"\n", 0, len(body) - 1) + 1
            number = body.count(b"\n")
            self.last_seq = decode(body[start:], last, number).seq
        else:
            self.last_seq = int(last.stem) - 1
        self._open_segment(last)

    def _start_segment(self, first_seq: int) -> None:
        path = self.folder / f"{first_seq:012d}.jsonl"
        path.touch()
        self._fsync_dir()
        self._open_segment(path)

    def _open_segment(self, path: Path) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._segment = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _fsync_dir(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # ---- appending ------------------------------------------------------------

    def append(self, event: NewEvent) -> Record:
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[NewEvent],
                    guard: Callable[[], bool] | None = None) -> list[Record]:
        """Append ``events`` as one batch. ``guard``, when given, is asked under the lock once
        this process has caught up with every other's appends: when it says False nothing is
        appended and the result is empty. That makes check-then-append decisions (has this
        run started, is this gate still open, was this event id seen) atomic across
        processes."""
        if self._fd is None:
            raise LogError("the event log is not open")
        with self._locked():
            self._catch_up()
            if guard is not None and not guard():
                return []
            ts = format_ts(self.now())
            records = []
            chunks = []
            for event in events:
                self.last_seq += 1
                record = Record(self.last_seq, ts, event.type, dict(event.data), event.run,
                                event.cause)
                records.append(record)
                chunks.append(encode(record))
            payload = b"".join(chunks)
            assert self._fd is not None
            os.write(self._fd, payload)
            self._size += len(payload)
            self._dirty = True
            if self.fsync_policy == "always" or (
                    time.monotonic() - self._last_fsync >= self.group_window):
                self._flush()
            self._note_runs(records)
            if self._size >= self.segment_bytes:
                self._flush()
                self._write_index([f"@ {self.last_seq}\n"])
                self._start_segment(self.last_seq + 1)
        return records

    def _catch_up(self) -> None:
        """Another process may have appended (or rotated) since our last batch."""
        assert self._fd is not None and self._segment is not None
        if os.stat(self._segment).st_ino != os.fstat(self._fd).st_ino:
            self._open_segment(self._segment)  # a redaction replaced the file (redaction.py)
            self._size = -1
        size = os.fstat(self._fd).st_size
        if size >= self.segment_bytes:  # someone filled it: they have started the next one
            segments = self.segments()
            if segments and segments[-1] != self._segment:
                self._open_segment(segments[-1])
                self._size = -1  # read the new segment's tail below
                size = os.fstat(self._fd).st_size
        if size == self._size:
            return
        known = max(self._size, 0)  # writes end on a line boundary, under the lock
        with open(self._segment, "rb") as handle:
            handle.seek(known)
            data = handle.read()
        self._size = size
        if data:
            start = data.rfind(b"\n", 0, len(data) - 1) + 1
            self.last_seq = decode(data[start:], self._segment, -1).seq
        elif known == 0:
            self.last_seq = int(self._segment.stem) - 1
        self._read_index_tail()

    def _flush(self) -> None:
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self._dirty = False
            self._last_fsync = time.monotonic()

    def sync(self) -> None:
        """Make everything appended so far durable (group commit's explicit flush)."""
        self._flush()

    def close(self) -> None:
        self._flush()
        if self._fd is not None and self._lock_fd is not None and self.last_seq:
            with self._locked():  # the index covers everything up to here
                self._catch_up()
                self._write_index([f"@ {self.last_seq}\n"])
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    class _Lock:
        def __init__(self, log: EventLog) -> None:
            self.log = log

        def __enter__(self) -> None:
            fd = self.log._lock_fd
            assert fd is not None
            deadline = time.monotonic() + self.log.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LogLocked(
                            f"{self.log.folder}: another aiosrun process has held the event "
                            f"log for over {self.log.lock_timeout:.0f} s; is one stuck?"
                        ) from None
                    time.sleep(0.001)

        def __exit__(self, *exc: object) -> None:
            assert self.log._lock_fd is not None
            fcntl.flock(self.log._lock_fd, fcntl.LOCK_UN)

    def _locked(self) -> EventLog._Lock:
        return EventLog._Lock(self)

    # ---- the run index ------------------------------------------------------------

    def _note_runs(self, records: Sequence[Record]) -> None:
        assert self._segment is not None
        segment = self._segment.name
        lines = []
        for record in records:
            if record.run is None:
                continue
            known = self._index.setdefault(record.run, [])
            if segment not in known:
                known.append(segment)
                lines.append(f"{record.run} {segment} {record.seq}\n")
        if self.last_seq // 1000 > (self.last_seq - len(records)) // 1000:
            lines.append(f"@ {self.last_seq}\n")  # bounds the re-index after a crash
        if lines:
            self._write_index(lines)
        self._indexed_seq = self.last_seq

    def _write_index(self, lines: Sequence[str]) -> None:
        payload = "".join(lines).encode("utf-8")
        with open(self.folder / _INDEX, "ab") as handle:
            handle.write(payload)
        self._index_offset += len(payload)

    def _load_index(self) -> None:
        self._index = {}
        self._indexed_seq = 0
        self._index_offset = 0
        self._read_index_tail()
        if self._indexed_seq < self.last_seq:
            self._reindex_from(self._indexed_seq + 1)

    def _read_index_tail(self) -> None:
        """Read the index lines added since we last looked (by us or another process)."""
        path = self.folder / _INDEX
        if not path.exists():
            return
        with open(path, "rb") as handle:
            handle.seek(self._index_offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._index_offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "@" and parts[1].isdigit():  # watermark
                self._indexed_seq = max(self._indexed_seq, int(parts[1]))
            elif len(parts) == 3 and parts[2].isdigit():
                runs = self._index.setdefault(parts[0], [])
                if parts[1] not in runs:
                    runs.append(parts[1])
                self._indexed_seq = max(self._indexed_seq, int(parts[2]))

    def _reindex_from(self, seq: int) -> None:
        """Add what the index misses (a crash between a record and its index line)."""
        missing: list[str] = []
        for segment, record in self._scan(seq):
            if record.run is None:
                continue
            known = self._index.setdefault(record.run, [])
            if segment.name not in known:
                known.append(segment.name)
                missing.append(f"{record.run} {segment.name} {record.seq}\n")
        if missing:
            self._write_index(missing)
        self._indexed_seq = self.last_seq

    def rebuild_index(self) -> int:
        """Rewrite ``runs.idx`` from the segments; returns the number of runs."""
        (self.folder / _INDEX).unlink(missing_ok=True)
        self._index = {}
        self._index_offset = 0
        self._reindex_from(1)
        return len(self._index)

    # ---- reading ------------------------------------------------------------

    def _scan(self, from_seq: int = 1, only: set[str] | None = None,
              run: str | None = None) -> Iterator[tuple[Path, Record]]:
        """Records from ``from_seq``; lines before it, or (with ``run``) of other runs, are
        passed over without decoding: the check is a cheap look at the line's prefix."""
        segments = self.segments()
        marker = f'"run":{json.dumps(run, ensure_ascii=False)},'.encode() if run else None
        for i, segment in enumerate(segments):
            if i + 1 < len(segments) and int(segments[i + 1].stem) <= from_seq:
                continue
            if only is not None and segment.name not in only:
                continue
            with open(segment, "rb") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.endswith(b"\n"):
                        break  # a torn tail another writer is still completing
                    if from_seq > 1 and line_seq(line) < from_seq:
                        continue
                    if marker is not None and marker not in line[:200]:
                        continue
                    record = decode(line, segment, number)
                    if record.seq >= from_seq:
                        yield segment, record

    def read(self, from_seq: int = 1) -> Iterator[Record]:
        """Every record from ``from_seq`` on, verified; raises :class:`LogCorrupted`."""
        for _, record in self._scan(from_seq):
            yield record

    def read_run(self, run: str, from_seq: int = 1) -> Iterator[Record]:
        """One run's records, reading only the segments the index names for it (after
        catching up with the index lines other processes added)."""
        if self._lock_fd is not None:
            self._read_index_tail()
        segments: set[str] | None = set(self._index.get(run, ()))
        if not segments:
            segments = None  # a writer between its record and its index line: scan all
        for _, record in self._scan(from_seq, only=segments, run=run):
            if record.run == run:
                yield record

    def runs(self) -> list[str]:
        return list(self._index)

    def has_run(self, run: str) -> bool:
        """Whether the run has records (index lines other processes added included)."""
        if run not in self._index and self._lock_fd is not None:
            self._read_index_tail()
        return run in self._index
