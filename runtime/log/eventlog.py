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
anywhere else stops every reader with :class:`LogCorrupted` naming the file and line. A
batch is written whole or not at all: a full disk cuts the files back and raises
:class:`~aiosrun.runtime.log.storage.StorageFull`.

Open verifies what changed since the log was last sealed: a segment's *seal* (its size and
CRC32, recorded in ``runs.idx`` at close and rotation once those bytes are durable, with the
file's inode and modification time) checks its prefix in one pass, and the lines past it are
checked one by one (checksum, contiguous seq). A file untouched since its seal is not read
again, only its last line: so an edit, a copy over a segment or a cut stops every command,
even one that starts from a snapshot, and opening costs the same at any history length; a
byte that changes without the file's time (bit rot) is caught by the first reader that
passes over it, and by ``doctor``, which reads every record.

``runs.idx`` maps each run to the segments that hold its records, so one run's history is
read without scanning the whole log. It is derived: ``@ SEQ`` watermark lines say how far it
is complete, and what lies beyond is re-indexed at open. Every line carries a CRC32; an
altered one stops the readers that use the index until ``doctor --rebuild``.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import re
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from aiosrun.dsl.errors import AiosrunError
from aiosrun.runtime.errors import Unavailable
from aiosrun.runtime.log.marks import Marks, load_marks, save_marks
from aiosrun.runtime.log.seek import STRIDE, SeekMarks, nearer
from aiosrun.runtime.log.skim import skim_version
from aiosrun.runtime.log.storage import (
    StorageError,
    append_all,
    cut_back,
    refusal,
    sign,
    unsign,
)

FsyncPolicy = Literal["always", "group"]
_CRC_SUFFIX = len(',"crc":"') + 8 + len('"}')
_INDEX = "runs.idx"
_LOCK = "lock"
_CHECKPOINT = "runs.checkpoint"  # how much of runs.idx a clean close had verified
_RUN_LINE = re.compile(rb"(?m)^([^=@!\n][^ \n]*) ")
_REWRITE = "rewrite.commit"  # a segment rewrite (a redaction) past its commit point
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
# a seal made this soon after the file's last write does not vouch for it: a write within
# the file system's clock tick (a few ms) after the seal would leave the same time
_RACY_NS = 50_000_000
_DIRECT_SPAN = 10_000  # a run read between two known seqs this close scans them, no index


def _mark_starts(data: bytes) -> list[int]:
    """Where runs.idx's seal, watermark and clean-close lines start, in file order: three
    byte searches (C speed) instead of a regular expression tried at every line start, which
    took 46 ms over the 5 MB index of 1,000,000 records, most of a read command's open."""
    starts = [0] if data[:2] in (b"= ", b"@ ", b"! ") else []
    for needle in (b"\n= ", b"\n@ ", b"\n! "):
        at = data.find(needle)
        while at >= 0:
            starts.append(at + 1)
            at = data.find(needle, at + 1)
    starts.sort()
    return starts


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


class LeaseLost(LogError):
    """This process no longer holds the lease of the run it appends for: another worker took
    the run over (a shared store, after this one renewed nothing for ``lease_timeout``).
    Nothing of the batch was recorded; the run is the other worker's now."""


class StoreUnavailable(LogError, Unavailable):
    """The store's server refused or went away (PostgreSQL): nothing of the batch was
    recorded. It may come back: a long-lived ``serve`` waits for it."""


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


def decode(line: bytes, file: Path, number: int, *, skim: bool = False) -> Record:
    """A verified line's record; ``skim``: a large playbook version's IR is left as its
    text (runtime/log/skim.py), for a reader that needs its name and digest only."""
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
        obj = (skim and skim_version(body)) or json.loads(body)
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
    """One workspace's log. Not thread-safe; one instance per process.

    Every reader (:meth:`read`, :meth:`read_run`, :meth:`runs`) first catches up with what
    other processes appended since (a ``stat`` when nothing changed), so a long-lived process
    such as ``serve`` sees the runs a CLI command starts. A workspace that cannot be written
    (a read-only mount, no permission) opens read-only: everything reads, nothing appends.
    """

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
        self.read_only = False
        self.index_problem: LogCorrupted | None = None  # an altered runs.idx line
        self._segment: Path | None = None
        self._listed: list[Path] = []  # the segments, as _known_segments last listed them
        # the last seq of each run that got a record since the log was opened (appended
        # here or caught up from another process); a run not in it has none after
        # _opened_seq. A run's reader then learns "nothing new" without scanning.
        self._last_of: dict[str, int] = {}
        self._opened_seq = 0
        self._size = 0
        self._crc = 0  # CRC32 of the current segment's first _size bytes
        self._lines = 0  # and how many lines they hold (for positioned errors)
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self._dirty = False
        self._last_fsync = 0.0
        self._index: dict[str, list[str]] = {}
        self._filed: set[tuple[str, str]] = set()  # (run, segment) lines runs.idx holds
        self._seals: dict[str, tuple[int, int]] = {}  # segment -> (size, crc) it had
        self._sealed_stat: dict[str, tuple[int, int, int]] = {}  # (mtime, inode, sealed at)
        self._hints: dict[str, tuple[list[int], list[int]]] = {}  # runs.idx's seq offsets
        self._verified: dict[str, tuple[int, int, os.stat_result]] = {}  # read in full at open
        self._index_crc: int | None = 0  # CRC32 of runs.idx up to _index_offset (None: unsure)
        self._lazy: bytes | None = None  # a checkpointed runs.idx prefix, its run lines unread
        self._loaded: set[str] = set()  # runs whose lines in it were read
        self._lazy_starts: dict[bytes, list[int]] | None = None  # run -> its lines' starts
        self._indexed_seq = 0
        self._index_offset = 0
        self._index_line = 0
        self._first: dict[tuple[str, str], int] = {}  # (run, segment) -> its first seq there
        self._closed_seq = 0  # a close made the log durable up to here (``! SEQ`` lines)
        self._checkpoint_size = -1  # how much of runs.idx runs.checkpoint vouches for
        self._marks = SeekMarks()
        self._inode = 0
        self.written_seq = 0  # the last record this process appended
        self.durable_seq = 0  # and the last of those known to be fsynced
        # ``group`` policy: when set, a due fsync is handed to it (a worker thread, see
        # group_commit.py) instead of being made on the appender's path
        self.fsync_hook: Callable[[], None] | None = None
        # an fsync that failed: the kernel may have dropped those pages while still showing
        # them, so nothing more is appended or called durable in this process
        self.failed_sync: StorageError | None = None

    # ---- opening ------------------------------------------------------------

    def open(self) -> EventLog:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if not self.folder.is_dir():
                raise LogError(f"{self.folder}: cannot create the event log folder "
                               f"({exc.strerror or exc})") from None
        self._lock_fd = self._open_lock()
        with self._locked():
            if not self.read_only:
                self._finish_rewrite()
            self._read_index_tail()
            self._recover()
            self._last_of, self._opened_seq = {}, self.last_seq
            if self.index_problem is None and self._closed_seq > self.last_seq:
                self.index_problem = LogCorrupted(
                    self.folder / _INDEX, self._index_line, f"the log was closed durable up "
                    f"to seq {self._closed_seq}, but it ends at seq {self.last_seq}: records "
                    "were cut off the log; restore it from a backup (`aiosrun doctor "
                    "--rebuild` goes on without them)")
            if self.index_problem is None and self._indexed_seq < self.last_seq:
                self._reindex_from(self._indexed_seq + 1)
        return self

    def _open_lock(self) -> int | None:
        try:
            return os.open(self.folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno not in _READ_ONLY:
                raise
        self.read_only = True
        try:
            return os.open(self.folder / _LOCK, os.O_RDONLY)
        except OSError:
            return None  # nobody can write here either: no lock needed to read

    def __enter__(self) -> EventLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def segments(self) -> list[Path]:
        return sorted(self.folder.glob("*.jsonl"))

    def _known_segments(self) -> list[Path]:
        """The segments, listed again only when the one appended to has changed (this
        process or another rotated): a reader in ``serve`` scans many times a second, and
        listing the folder cost more than reading the few new records."""
        cached = self._listed
        if self._segment is None or not cached or cached[-1] != self._segment:
            cached = self._listed = self.segments()
        return cached

    def _recover(self) -> None:
        """Verify every segment (a sealed prefix by one CRC, the rest line by line), cut a
        torn last line, and open the last segment for appending."""
        segments = self.segments()
        names = {segment.name for segment in segments}
        for name in sorted(set(self._seals) - names):
            raise LogCorrupted(self.folder / name, 1, f"the segment is missing ({_INDEX} "
                               "sealed it): records were cut off")
        if not segments:
            if not self.read_only:
                self._start_segment(1)
            return
        for number, segment in enumerate(segments):
            last = number == len(segments) - 1
            following = int(segments[number + 1].stem) if not last else None
            if self._untouched(segment):
                size, crc = self._seals[segment.name]
                end = self._last_seq_at(segment, size)
                if following is not None and end != following - 1:
                    raise LogCorrupted(segment, end - int(segment.stem) + 2,
                                       f"the segment ends at seq {end} but the next one "
                                       f"starts at {following}: records are missing")
                if last:
                    self.last_seq = end
                    self._open_segment(segment, size, crc, end - int(segment.stem) + 1)
                continue
            before = os.stat(segment)
            data = segment.read_bytes()
            cut = len(data)
            if data and not data.endswith(b"\n"):
                if not last:
                    raise LogCorrupted(segment, data.count(b"\n") + 1, "a torn record in the "
                                       "middle of the log")
                cut = data.rfind(b"\n") + 1
            sealed = self._verify(segment, data[:cut])
            if not last and segment.name in self._seals:
                self._verified[segment.name] = (cut, sealed, before)
            if cut < len(data):
                self.repaired = (f"{segment}: cut off a torn last record ({len(data) - cut} "
                                 "bytes without a line end), left by an interrupted write")
                if not self.read_only:
                    with open(segment, "r+b") as handle:
                        handle.truncate(cut)
                        os.fsync(handle.fileno())
            end = self._last_seq_of(segment, data[:cut])
            if following is not None and end != following - 1:
                raise LogCorrupted(segment, data.count(b"\n") + 1,
                                   f"the segment ends at seq {end} but the next one starts at "
                                   f"{following}: records are missing")
            if last:
                self.last_seq = end
                self._open_segment(segment, cut, sealed, data[:cut].count(b"\n"))

    def _untouched(self, segment: Path) -> bool:
        """Whether the file is as it was when sealed (same inode, size and modification
        time): its bytes were then written or verified by the sealing process, so they are
        not read again at open. Any write since (an append, an edit, a copy over it) changes
        the time or the size, and the segment is verified in full as before; what reads a
        record still checks its checksum, and ``doctor`` reads them all. A seal made within
        ``_RACY_NS`` of the last write is not trusted (as git treats a "racily clean"
        file): the next open verifies the segment and its close seals it again."""
        sealed = self._sealed_stat.get(segment.name)
        if sealed is None:
            return False
        mtime, inode, sealed_at = sealed
        if sealed_at - mtime < _RACY_NS:  # a write in the same clock tick would not show
            return False
        try:
            stat = os.stat(segment)
        except OSError:
            return False
        return (stat.st_size, stat.st_mtime_ns, stat.st_ino) == (
            self._seals[segment.name][0], mtime, inode)

    @staticmethod
    def _last_seq_at(segment: Path, size: int) -> int:
        """The seq of the last line of the segment's first ``size`` bytes, read from the end
        (verified by its checksum)."""
        if size == 0:
            return int(segment.stem) - 1
        with open(segment, "rb") as handle:
            back = 4096
            while True:
                start = max(0, size - back)
                handle.seek(start)
                data = handle.read(size - start)
                at = data.rfind(b"\n", 0, len(data) - 1)
                if at >= 0 or start == 0:
                    line = data[at + 1:]
                    first = int(segment.stem)
                    return decode(line, segment, line_seq(line) - first + 1).seq
                back *= 4

    def _stat_of(self, path: Path, fd: int | None = None) -> str:
        """`` MTIME INODE NOW`` of a segment, for its seal line (see :meth:`_untouched`)."""
        stat = os.fstat(fd) if fd is not None else os.stat(path)
        return f" {stat.st_mtime_ns} {stat.st_ino} {time.time_ns()}"

    def _finish_rewrite(self) -> None:
        """At open: complete a segment rewrite that a crash interrupted past its commit
        point, or drop the files of one interrupted before it (``redaction.py``)."""
        try:
            plan = json.loads((self.folder / _REWRITE).read_text("utf-8"))
        except FileNotFoundError:
            for stray in self.folder.glob("*.rewriting"):
                stray.unlink()
            return
        self.complete_rewrite({str(k): int(v) for k, v in plan.items()})

    def complete_rewrite(self, plan: Mapping[str, int]) -> None:
        """Put each rewritten segment (``NAME.rewriting``, made from the segment's first
        ``plan[NAME]`` bytes) in place, seal it in ``runs.idx``, and remove the commit file.
        Idempotent, so a crash anywhere in it is finished by the next open. Lines another
        writer appended since are carried over; the seals, appended last, win over any
        earlier one. Called under the lock."""
        seals = []
        for name, size in plan.items():
            segment = self.folder / name
            rewritten = segment.with_suffix(".rewriting")
            if rewritten.exists():
                grown = segment.read_bytes()[size:]
                if grown:  # another writer appended to the old file after a crash
                    with rewritten.open("ab") as out:
                        out.write(grown)
                        out.flush()
                        os.fsync(out.fileno())
                os.replace(rewritten, segment)
            data = segment.read_bytes()
            whole = data[: data.rfind(b"\n") + 1]
            self._verify_lines(segment, whole, 0, len(whole))  # never seal a damaged one
            stat = self._stat_of(segment) if len(whole) == len(data) else ""
            seals.append(sign(f"= {name} {len(whole)} {zlib.crc32(whole):08x}{stat}") + "\n")
        self._fsync_dir()
        path = self.folder / _INDEX
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            payload = "".join(seals).encode("utf-8")
            append_all(fd, payload, os.fstat(fd).st_size, path)
            os.fsync(fd)
        finally:
            os.close(fd)
        (self.folder / _REWRITE).unlink(missing_ok=True)
        self._fsync_dir()
        self._read_index_tail()

    def _verify(self, segment: Path, body: bytes) -> int:
        """Check ``body`` (the segment's complete lines); returns its CRC32."""
        seal = self._seals.get(segment.name)
        start = 0
        crc = 0
        if seal is not None:
            size, expected = seal
            if len(body) < size:
                raise LogCorrupted(segment, body.count(b"\n") + 1,
                                   f"truncated: {size} bytes were recorded, {len(body)} remain")
            crc = zlib.crc32(body[:size])
            if crc != expected:
                self._verify_lines(segment, body, 0, len(body))
                raise LogCorrupted(segment, 1, "the segment differs from what was recorded")
            start = size
        self._verify_lines(segment, body, start, len(body))
        return zlib.crc32(body[start:], crc)

    def _verify_lines(self, segment: Path, body: bytes, start: int, end: int) -> None:
        """Each line's checksum and seq (contiguous from the segment's name), without JSON;
        seek marks are noted on the way."""
        number = body.count(b"\n", 0, start)
        expected = int(segment.stem) + number
        position = start
        inode = os.stat(segment).st_ino if start < end else 0
        while position < end:
            if expected % STRIDE == 0:
                self._marks.note(segment.name, inode, expected, position)
            stop = body.index(b"\n", position) + 1
            line = body[position:stop]
            number += 1
            if len(line) <= _CRC_SUFFIX + 1 or not line.endswith(b'"}\n'):
                raise LogCorrupted(segment, number, "no checksum")
            try:
                crc = int(line[-11:-3], 16)
            except ValueError:
                raise LogCorrupted(segment, number, "unreadable checksum") from None
            if zlib.crc32(line[:-(_CRC_SUFFIX + 1)] + b"}") != crc:
                raise LogCorrupted(segment, number, "checksum mismatch")
            seq = line_seq(line)
            if seq != expected:
                raise LogCorrupted(segment, number, f"seq {seq} where {expected} was due: "
                                   "records are missing or out of place")
            expected += 1
            position = stop

    @staticmethod
    def _last_seq_of(segment: Path, body: bytes) -> int:
        if not body:
            return int(segment.stem) - 1
        start = body.rfind(b"\n", 0, len(body) - 1) + 1
        return decode(body[start:], segment, body.count(b"\n")).seq

    def _start_segment(self, first_seq: int) -> None:
        path = self.folder / f"{first_seq:012d}.jsonl"
        path.touch()
        self._fsync_dir()
        self._open_segment(path, 0, 0, 0)

    def _open_segment(self, path: Path, size: int, crc: int, lines: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._segment = path
        if self.read_only:
            self._fd = os.open(path, os.O_RDONLY)
        else:
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:
                if exc.errno not in _READ_ONLY:
                    raise
                self.read_only = True
                self._fd = os.open(path, os.O_RDONLY)
        self._size, self._crc, self._lines = size, crc, lines
        self._inode = os.fstat(self._fd).st_ino

    def _fsync_dir(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # ---- appending ------------------------------------------------------------

    def append(self, event: NewEvent, *, durable: bool = True) -> Record:
        return self.append_many([event], durable=durable)[0]

    def append_many(self, events: Sequence[NewEvent],
                    guard: Callable[[], bool] | None = None, *,
                    durable: bool = True) -> list[Record]:
        """Append ``events`` as one batch: all of it or, on a full disk or a failed write,
        none of it (:class:`StorageError`, the files as they were). ``guard``, when given, is
        asked under the lock once this process has caught up with every other's appends:
        when it says False nothing is appended and the result is empty. That makes
        check-then-append decisions (has this run started, is this gate still open, was this
        event id seen) atomic across processes. ``durable=False``: with ``fsync: always``,
        the batch is made durable by the next durable append rather than by an fsync of its
        own (a step's start: a lost start is attempted again with the same idempotency
        key, so one fsync per step boundary keeps every guarantee)."""
        if self.read_only:
            raise LogError(f"{self.folder}: the workspace is read-only; nothing can be "
                           "recorded (reading commands still work)")
        if self._fd is None:
            raise LogError("the event log is not open")
        if self.failed_sync is not None:
            raise self.failed_sync
        with self._locked():
            self._catch_up()
            if self.index_problem is not None:
                raise self.index_problem
            if guard is not None and not guard():
                return []
            assert self._fd is not None and self._segment is not None
            ts = format_ts(self.now())
            records = []
            chunks = []
            for offset, event in enumerate(events, start=1):
                record = Record(self.last_seq + offset, ts, event.type, dict(event.data),
                                event.run, event.cause)
                records.append(record)
                chunks.append(encode(record))
            payload = b"".join(chunks)
            before = self._size
            append_all(self._fd, payload, before, self._segment)
            lines = self._index_lines(records, chunks, before)
            index_size: int | None = None
            try:
                if lines:
                    index_size = self._write_index(lines, note=False)
                due = time.monotonic() - self._last_fsync >= self.group_window
                if (self.fsync_policy == "always" and durable) or (
                        self.fsync_policy == "group" and due and self.fsync_hook is None):
                    os.fsync(self._fd)
                    self._dirty, self._last_fsync = False, time.monotonic()
                    if records:
                        self.durable_seq = records[-1].seq
                else:
                    self._dirty = True
            except (OSError, StorageError) as exc:
                cut_back(self._fd, before)
                if index_size is not None:
                    self._cut_index(index_size)
                if isinstance(exc, StorageError):
                    raise
                raise refusal(self._segment, exc) from None
            self.last_seq = records[-1].seq if records else self.last_seq
            self.written_seq = self.last_seq if records else self.written_seq
            position = before
            for record, chunk in zip(records, chunks, strict=True):
                if record.seq % STRIDE == 0:
                    self._marks.note(self._segment.name, self._inode, record.seq, position)
                position += len(chunk)
            self._size += len(payload)
            self._lines += len(records)
            self._crc = zlib.crc32(payload, self._crc)
            for line in lines:
                self._parse_index_line(line.rstrip("\n"), self.folder / _INDEX)
            for record in records:
                if record.run is not None:
                    self._learn(record.run, self._segment.name, record.seq, filed=True)
                    self._last_of[record.run] = record.seq
            self._indexed_seq = self.last_seq
            if self._size >= self.segment_bytes:
                self._flush()
                self._seal()
                self._start_segment(self.last_seq + 1)
        if self._dirty and due and self.fsync_hook is not None:
            self.fsync_hook()
        return records

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Hold the log across a check and the appends it decides: no other process appends
        in between (``start_or_load`` uses it so one run id is started once)."""
        return self._transaction()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._locked():
            self._catch_up()
            yield

    def refresh(self) -> None:
        """Catch up with other processes' appends; one ``fstat`` when there are none."""
        if self._fd is None:
            if self.segments():  # a read-only log that another process has since begun
                self._recover()
                self._last_of, self._opened_seq = {}, self.last_seq
            if self._fd is None:
                return
        size = os.fstat(self._fd).st_size
        if size == self._size and size < self.segment_bytes:
            return
        with self._locked():
            self._catch_up()

    def _catch_up(self) -> None:
        """Read what others appended (or rotated to) since we last looked: each new line is
        verified, its run noted, and an index line a crashed writer left out is added."""
        if self._fd is None or self._segment is None:
            return
        if os.stat(self._segment).st_ino != os.fstat(self._fd).st_ino:
            data = self._segment.read_bytes()  # a redaction replaced the file (redaction.py)
            end = data.rfind(b"\n") + 1
            self._open_segment(self._segment, end, zlib.crc32(data[:end]), data.count(b"\n"))
        elif self._size == os.fstat(self._fd).st_size < self.segment_bytes:
            return  # nobody appended since: their index lines come with their records
        self._read_index_tail()
        missing: list[str] = []
        while True:
            size = os.fstat(self._fd).st_size
            if size > self._size:
                with open(self._segment, "rb") as handle:
                    handle.seek(self._size)
                    data = handle.read(size - self._size)
                data = data[: data.rfind(b"\n") + 1]  # a writer without the lock: whole lines
                number = self._lines
                position = self._size
                for line in data.splitlines(keepends=True):
                    number += 1
                    record = decode(line, self._segment, number)
                    if record.seq != self.last_seq + 1:
                        raise LogCorrupted(self._segment, number,
                                           f"seq {record.seq} where {self.last_seq + 1} was "
                                           "due: records are missing or out of place")
                    if record.seq % STRIDE == 0:
                        self._marks.note(self._segment.name, self._inode, record.seq, position)
                    self.last_seq = record.seq
                    if record.run is not None:
                        self._last_of[record.run] = record.seq
                        if self._learn(record.run, self._segment.name, record.seq):
                            missing.append(sign(f"{record.run} {self._segment.name} "
                                                f"{record.seq} {position}"))
                    position += len(line)
                self._size += len(data)
                self._lines = number
                self._crc = zlib.crc32(data, self._crc)
            if self._size < self.segment_bytes:
                break
            later = [s for s in self.segments() if int(s.stem) > int(self._segment.stem)]
            if not later:
                break
            self._open_segment(later[0], 0, 0, 0)  # someone filled it and began the next
        self._indexed_seq = max(self._indexed_seq, self.last_seq)
        if missing and not self.read_only and self._lock_fd is not None:
            self._write_index([line + "\n" for line in missing])

    def _flush(self) -> None:
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self._dirty = False
            self._last_fsync = time.monotonic()
            self.durable_seq = self.written_seq

    def claim_sync(self) -> tuple[int, int, Path] | None:
        """For an fsync made elsewhere (group_commit.py): a duplicate of the segment's
        descriptor and the last record it will cover; None when nothing waits for one."""
        if self.failed_sync is not None:
            raise self.failed_sync
        if self._fd is None or self._segment is None or not self._dirty:
            self.durable_seq = self.written_seq
            return None
        return os.dup(self._fd), self.written_seq, self._segment

    def synced(self, seq: int) -> None:
        """An fsync claimed by :meth:`claim_sync` is done."""
        self.durable_seq = max(self.durable_seq, seq)
        self._last_fsync = time.monotonic()
        if self.durable_seq >= self.written_seq:
            self._dirty = False

    def sync(self) -> None:
        """Make everything appended so far durable (group commit's explicit flush)."""
        self._flush()

    def _seal(self, *, closed: bool = False) -> None:
        """Record the current segment's size and CRC32 (its bytes are durable by now), so a
        later open notices a flipped byte or a cut anywhere in it without reading JSON.
        ``closed``: the whole log is durable up to here, so a later log that ends before
        lost records to a cut, not to a crash (which can only take what was not durable)."""
        assert self._segment is not None
        stat = ""  # the file holds just what is sealed (under the lock: nobody appends)
        if self._fd is not None and os.fstat(self._fd).st_size == self._size:
            stat = self._stat_of(self._segment, self._fd)
        lines = self._seals_of_verified()
        lines += [sign(f"= {self._segment.name} {self._size} {self._crc:08x}{stat}") + "\n",
                 sign(f"{'!' if closed else '@'} {self.last_seq}") + "\n"]
        with contextlib.suppress(StorageError):  # derived: unsealed, lines are checked singly
            self._write_index(lines)
        self._seals[self._segment.name] = (self._size, self._crc)

    def _seals_of_verified(self) -> list[str]:
        """Seal again, with their stat, the finished segments this open verified in full
        and that are unchanged since: a seal made at rotation, right after the last write,
        does not vouch for the file (see :meth:`_untouched`), this one does."""
        lines = []
        for name, (size, crc, seen) in self._verified.items():
            try:
                now = os.stat(self.folder / name)
            except OSError:
                continue
            stat = (now.st_size, now.st_mtime_ns, now.st_ino)
            if stat == (seen.st_size, seen.st_mtime_ns, seen.st_ino) and size == now.st_size:
                lines.append(sign(f"= {name} {size} {crc:08x}{self._stat_of(self.folder / name)}")
                             + "\n")
        self._verified.clear()
        return lines

    def close(self) -> None:
        if not self.read_only:
            with contextlib.suppress(OSError):  # what failed was never acknowledged durable
                self._flush()
            if self._fd is not None and self._lock_fd is not None and self.last_seq \
                    and self.index_problem is None and self.failed_sync is None \
                    and not self._said_already():
                with self._locked():  # the index covers everything up to here
                    self._catch_up()
                    try:
                        os.fsync(self._fd)  # others' appends too (cheap when all is clean)
                        durable = True
                    except OSError:
                        durable = False
                    self._seal(closed=durable)
                    self._write_checkpoint()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _said_already(self) -> bool:
        """Whether runs.idx already holds what this close would write: nothing was appended
        since the last clean close, whose seal (trusted: see :meth:`_untouched`) covers the
        segment as it is, no verified segment awaits its seal again, and the checkpoint
        covers the whole index. A command that only read then neither fsyncs nor adds
        two lines to runs.idx, which grew by them at every ``status``."""
        segment = self._segment
        return segment is not None and self._closed_seq == self.last_seq and \
            not self._verified and self._checkpoint_size == self._index_offset and \
            self._seals.get(segment.name) == (self._size, self._crc) and \
            self._untouched(segment)

    class _Lock:
        def __init__(self, log: EventLog) -> None:
            self.log = log

        def __enter__(self) -> None:
            log = self.log
            log._lock_depth += 1
            fd = log._lock_fd
            if log._lock_depth > 1 or fd is None:
                return
            deadline = time.monotonic() + log.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        log._lock_depth -= 1
                        raise LogLocked(
                            f"{log.folder}: another aiosrun process has held the event "
                            f"log for over {log.lock_timeout:.0f} s; is one stuck?"
                        ) from None
                    time.sleep(0.001)

        def __exit__(self, *exc: object) -> None:
            log = self.log
            log._lock_depth -= 1
            if log._lock_depth == 0 and log._lock_fd is not None:
                fcntl.flock(log._lock_fd, fcntl.LOCK_UN)

    def _locked(self) -> EventLog._Lock:
        return EventLog._Lock(self)

    # ---- the run index ------------------------------------------------------------

    def _learn(self, run: str, segment: str, seq: int, *, filed: bool = False) -> bool:
        self._load_run(run)
        """Note that ``run`` has records in ``segment`` from ``seq`` on; True when runs.idx
        lacks that."""
        known = self._index.setdefault(run, [])
        if segment not in known:
            known.append(segment)
        first = self._first.get((run, segment))
        if first is None or seq < first:
            self._first[run, segment] = seq
        if filed:
            self._filed.add((run, segment))
        return (run, segment) not in self._filed

    def _hint(self, segment: str, seq: int, offset: int) -> None:
        """runs.idx says the record ``seq`` starts at byte ``offset`` of ``segment``: a
        place a read may start from without the marks of a pass over the file (an open that
        did not read the segment has none). Checked before use (:meth:`_start_at`)."""
        seqs, offsets = self._hints.setdefault(segment, ([], []))
        if not seqs or seq > seqs[-1]:
            seqs.append(seq)
            offsets.append(offset)
        else:  # a run's checkpointed line, read when the run was asked for
            at = bisect.bisect_left(seqs, seq)
            if seqs[at] != seq:
                seqs.insert(at, seq)
                offsets.insert(at, offset)

    def _start_at(self, handle: Any, segment: str, inode: int, first: int,
                  seq: int) -> tuple[int, int]:
        """Where a read of the records from ``seq`` starts: the nearest seek mark or
        runs.idx offset at or before it. An offset is used only when a line of that seq
        starts there (a redaction's rewrite moves lines; then the marks serve)."""
        mark = self._marks.find(segment, inode, first, seq)
        seqs, offsets = self._hints.get(segment, ((), ()))
        at = bisect.bisect_right(seqs, seq) - 1
        if at < 0 or seqs[at] <= mark[0]:
            return mark
        offset = offsets[at]
        if offset > 0:
            handle.seek(offset - 1)
            if handle.read(1) != b"\n":
                return mark
        else:
            handle.seek(0)
        if line_seq(handle.read(32)) != seqs[at]:
            return mark
        return seqs[at], offset

    def _bound(self, handle: Any, segment: str, seq: int) -> int:
        """A byte offset past the start of the record ``seq``: runs.idx's next offset after
        it (unchecked: a wrong one only makes :func:`nearer` find less), else the file's
        end."""
        seqs, offsets = self._hints.get(segment, ((), ()))
        at = bisect.bisect_right(seqs, seq)
        if at < len(seqs):
            return offsets[at]
        return os.fstat(handle.fileno()).st_size

    def _index_lines(self, records: Sequence[Record], chunks: Sequence[bytes],
                     before: int) -> list[str]:
        """The runs.idx lines a batch adds: each run's first record in this segment, with
        its byte offset, and a watermark every thousand records."""
        assert self._segment is not None
        segment = self._segment.name
        lines = []
        new: set[str] = set()
        position = before
        for record, chunk in zip(records, chunks, strict=True):
            if record.run is not None and (record.run, segment) not in self._filed \
                    and record.run not in new:
                new.add(record.run)
                lines.append(sign(f"{record.run} {segment} {record.seq} {position}") + "\n")
            position += len(chunk)
        if records and records[-1].seq // 1000 > (records[0].seq - 1) // 1000:
            # bounds a re-index after a crash, and is a place a read can start from
            lines.append(sign(f"@ {records[-1].seq} {segment} {position}") + "\n")
        return lines

    def _write_index(self, lines: Sequence[str], *, note: bool = True) -> int:
        """Append index lines in full (or not at all); returns the file's size before."""
        payload = "".join(lines).encode("utf-8")
        path = self.folder / _INDEX
        self._read_index_tail()  # lines another process added (a seal at its close) first
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise refusal(path, exc) from None
        try:
            size = os.fstat(fd).st_size
            append_all(fd, payload, size, path)
        finally:
            os.close(fd)
        if self._index_crc is not None:
            self._index_crc = (zlib.crc32(payload, self._index_crc)
                               if size == self._index_offset else None)
        self._index_offset = size + len(payload)
        self._index_line += len(lines)
        if note:
            for line in lines:
                self._parse_index_line(line.rstrip("\n"), path)
        return size

    def _cut_index(self, size: int) -> None:
        """Undo an index write whose batch failed after it."""
        path = self.folder / _INDEX
        with contextlib.suppress(OSError):
            os.truncate(path, size)
            self._index_crc = None  # the checkpoint is not written by this process
            self._index_offset = size
            self._index_line = self._count_lines(path)

    @staticmethod
    def _count_lines(path: Path) -> int:
        with open(path, "rb") as handle:
            return handle.read().count(b"\n")

    def _read_index_tail(self) -> None:
        """Read the index lines added since we last looked (by us or another process)."""
        path = self.folder / _INDEX
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size < self._index_offset:  # rewritten (doctor --rebuild): read it anew
                    self._forget_index()
                if size == self._index_offset:
                    return
                handle.seek(self._index_offset)
                data = handle.read()
        except FileNotFoundError:
            return
        complete = data[: data.rfind(b"\n") + 1]
        if self._index_offset == 0:
            complete = self._checkpointed(complete, path)
        if self._index_crc is not None:
            self._index_crc = zlib.crc32(complete, self._index_crc)
        self._index_offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            self._index_line += 1
            self._parse_index_line(line, path)

    def _forget_index(self) -> None:
        self._index, self._filed, self._seals, self._first = {}, set(), {}, {}
        self._sealed_stat, self._hints = {}, {}
        self._index_offset = self._index_line = self._indexed_seq = 0
        self._checkpoint_size = -1
        self._index_crc, self._lazy, self._loaded = 0, None, set()
        self._lazy_starts = None

    def _checkpointed(self, data: bytes, path: Path) -> bytes:
        """At open: when ``runs.checkpoint`` vouches for a prefix of runs.idx (its length
        and CRC32, written at a clean close by a process that had verified every line of it),
        its run lines are not parsed now but when a run is asked for (:meth:`_load_run`);
        its seals and watermarks are. Returns the rest, to parse line by line. Without a
        checkpoint, or when the prefix differs (an edit, a rewrite), everything is parsed
        and checked as before."""
        try:
            text = unsign((self.folder / _CHECKPOINT).read_text("utf-8").strip())
            length, crc = (text or "").split()
            size, expected = int(length), int(crc, 16)
        except (OSError, ValueError):
            return data
        if not 0 < size <= len(data) or data[size - 1:size] != b"\n":
            return data
        saved = load_marks(self.folder)
        if saved is not None and not (0 < saved.size <= size and
                                      data[saved.size - 1:saved.size] == b"\n"):
            saved = None
        known = zlib.crc32(data[:saved.size]) if saved is not None else 0
        if zlib.crc32(data[saved.size if saved is not None else 0:size], known) != expected:
            return data
        if saved is not None and known != saved.crc:
            saved = None  # they were parsed from other bytes (a rewritten index)
        prefix = data[:size]
        self._checkpoint_size = size
        self._lazy = prefix
        self._index_crc = expected
        self._index_offset = size
        self._index_line = saved.lines if saved is not None else 0
        closed, self._closed_seq = self._closed_seq, 0
        begin = 0
        if saved is not None:
            begin = saved.size
            self._indexed_seq, self._closed_seq = saved.indexed_seq, saved.closed_seq
            self._seals.update(saved.seals)
            self._sealed_stat.update(saved.sealed_stat)
            self._hints.update(saved.hints)
        for start in _mark_starts(prefix[begin:]):  # (checked by the CRC: none is altered)
            end = prefix.find(b"\n", begin + start)
            self._parse_index_line(prefix[begin + start:end].decode("utf-8", errors="replace"),
                                   path)
        self._index_line += prefix.count(b"\n", begin)
        if begin < size and self.index_problem is None and not self.read_only:
            save_marks(self.folder, Marks(
                size, expected, self._index_line, self._indexed_seq, self._closed_seq,
                self._seals, self._sealed_stat, self._hints))
        self._closed_seq = max(self._closed_seq, closed)
        return data[size:]

    def _load_run(self, run: str) -> None:
        """Parse the checkpointed run lines of ``run`` (found by a byte search)."""
        if self._lazy is None or run in self._loaded:
            return
        self._loaded.add(run)
        prefix = self._lazy
        if self._lazy_starts is None and len(self._loaded) > 4:  # many asked (the inbox)
            self._lazy_starts = {}
            for match in _RUN_LINE.finditer(prefix):  # one pass, instead of a search each
                self._lazy_starts.setdefault(match.group(1), []).append(match.start())
        if self._lazy_starts is not None:
            starts = self._lazy_starts.get(run.encode("utf-8"), [])
        else:
            needle = b"\n" + run.encode("utf-8") + b" "
            starts = [0] if prefix.startswith(needle[1:]) else []
            at = prefix.find(needle)
            while at >= 0:
                starts.append(at + 1)
                at = prefix.find(needle, at + 1)
        for start in starts:
            end = prefix.find(b"\n", start)
            self._parse_index_line(prefix[start:end].decode("utf-8", errors="replace"),
                                   self.folder / _INDEX)

    def _load_index(self) -> None:
        """Parse every checkpointed run line (``runs()`` lists them all)."""
        if self._lazy is None:
            return
        prefix, self._lazy, self._lazy_starts = self._lazy, None, None
        skip = tuple(b"=@!")
        for raw in prefix.splitlines():
            if raw and raw[0] not in skip:
                parts = raw.split(b" ")
                if parts[0].decode("utf-8", errors="replace") not in self._loaded:
                    self._parse_index_line(raw.decode("utf-8", errors="replace"),
                                           self.folder / _INDEX)
        self._loaded = set()

    def _write_checkpoint(self) -> None:
        """Vouch for runs.idx as this process has read and verified it (at a clean close)."""
        if self._index_crc is None or self.index_problem is not None:
            return
        path = self.folder / _CHECKPOINT
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(sign(f"{self._index_offset} {self._index_crc:08x}") + "\n",
                                 "utf-8")
            temporary.replace(path)
            self._checkpoint_size = self._index_offset
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink()

    def _parse_index_line(self, line: str, path: Path) -> None:
        text = unsign(line)
        parts = text.split() if text is not None else []
        if len(parts) == 2 and parts[0] == "@" and parts[1].isdigit():  # watermark
            self._indexed_seq = max(self._indexed_seq, int(parts[1]))
        elif len(parts) == 4 and parts[0] == "@" and parts[1].isdigit() and \
                parts[3].isdigit():  # and where the record after it starts
            self._indexed_seq = max(self._indexed_seq, int(parts[1]))
            self._hint(parts[2], int(parts[1]) + 1, int(parts[3]))
        elif len(parts) == 2 and parts[0] == "!" and parts[1].isdigit():  # a clean close
            self._closed_seq = max(self._closed_seq, int(parts[1]))
            self._indexed_seq = max(self._indexed_seq, int(parts[1]))
        elif len(parts) in (4, 7) and parts[0] == "=" and parts[2].isdigit():  # a seal
            self._seals[parts[1]] = (int(parts[2]), int(parts[3], 16))
            if len(parts) == 7:  # and the file's stat then (see _untouched)
                self._sealed_stat[parts[1]] = (int(parts[4]), int(parts[5]), int(parts[6]))
            else:
                self._sealed_stat.pop(parts[1], None)
        elif len(parts) == 4 and parts[2].isdigit() and parts[3].isdigit():  # with its offset
            self._learn(parts[0], parts[1], int(parts[2]), filed=True)
            self._hint(parts[1], int(parts[2]), int(parts[3]))
            self._indexed_seq = max(self._indexed_seq, int(parts[2]))
        elif len(parts) == 3 and parts[2].isdigit():
            self._learn(parts[0], parts[1], int(parts[2]), filed=True)
            self._indexed_seq = max(self._indexed_seq, int(parts[2]))
        elif self.index_problem is None:
            self.index_problem = LogCorrupted(
                path, self._index_line, "an altered or damaged index entry; the index is "
                "derived from the log: `aiosrun doctor --rebuild` rewrites it")

    def _reindex_from(self, seq: int) -> None:
        """Add what the index misses (a crash between a record and its index line)."""
        missing: list[str] = []
        for segment, record in self._scan(seq):
            if record.run is not None and self._learn(record.run, segment.name, record.seq):
                missing.append(sign(f"{record.run} {segment.name} {record.seq}") + "\n")
                self._filed.add((record.run, segment.name))
        if missing and not self.read_only:
            try:
                self._write_index(missing)
            except StorageError:
                for line in missing:  # kept in memory; the next open re-indexes them
                    run, name, _ = line.split(" ", 2)
                    self._filed.discard((run, name))
        self._indexed_seq = self.last_seq

    def rebuild_index(self) -> int:
        """Rewrite ``runs.idx`` from the segments; returns the number of runs."""
        with self._locked():
            (self.folder / _INDEX).unlink(missing_ok=True)
            self._forget_index()
            self.index_problem = None
            self._reindex_from(1)
            segments = self.segments()
            for segment in segments[:-1]:  # finished segments: seal them again
                data = segment.read_bytes()
                self._write_index([sign(f"= {segment.name} {len(data)} "
                                        f"{zlib.crc32(data):08x}{self._stat_of(segment)}")
                                   + "\n"])
            if self._segment is not None:
                self._seal()
        return len(self._index)

    # ---- reading ------------------------------------------------------------

    def _scan(self, from_seq: int = 1, only: set[str] | None = None,
              run: str | None = None, until: int | None = None,
              skim: bool = False) -> Iterator[tuple[Path, Record]]:
        """Records from ``from_seq``, read from the seek mark nearest before it (and, with
        ``run``, before the run's first record in each segment); lines of other runs are
        passed over without decoding: the check is a cheap look at the line's prefix."""
        segments = self._known_segments()
        marker = f'"run":{json.dumps(run, ensure_ascii=False)},'.encode() if run else None
        for i, segment in enumerate(segments):
            if i + 1 < len(segments) and int(segments[i + 1].stem) <= from_seq:
                continue
            if only is not None and segment.name not in only:
                continue
            start = max(from_seq, self._first.get((run, segment.name), 0) if run else 0)
            first = int(segment.stem)
            with open(segment, "rb") as handle:
                inode = os.fstat(handle.fileno()).st_ino
                seq, position = self._start_at(handle, segment.name, inode, first, start)
                handle.seek(position)
                if start - seq > STRIDE:  # far before the one wanted: halve the bytes between
                    seq, position = nearer(handle, seq, position,
                                           self._bound(handle, segment.name, start), start)
                    handle.seek(position)
                if start - seq > STRIDE:  # the lines before the one wanted, passed at C speed
                    passed = list(map(len, islice(handle, start - seq)))
                    seq, position = seq + len(passed), position + sum(passed)
                for line in handle:
                    if not line.endswith(b"\n"):
                        break  # a torn tail another writer is still completing
                    if seq % STRIDE == 0:
                        self._marks.note(segment.name, inode, seq, position)
                    seq += 1
                    position += len(line)
                    if until is not None and seq > until + 1:
                        return
                    if seq <= start or (marker is not None and marker not in line[:200]):
                        continue
                    record = decode(line, segment, seq - first, skim=skim)
                    if record.seq != seq - 1:
                        raise LogCorrupted(segment, seq - first, f"seq {record.seq} where "
                                           f"{seq - 1} was due: records are missing or out "
                                           "of place")
                    yield segment, record

    def read(self, from_seq: int = 1, *, skim: bool = False) -> Iterator[Record]:
        """Every record from ``from_seq`` on, verified; raises :class:`LogCorrupted`.
        ``skim``: large playbook versions come with their IR unparsed (see :func:`decode`)."""
        self.refresh()
        if self.index_problem is not None:
            raise self.index_problem
        if from_seq > self.last_seq:  # a caught-up reader asks this all the time
            return iter(())
        return (record for _, record in self._scan(from_seq, skim=skim))

    def read_run(self, run: str, from_seq: int = 1,
                 until_seq: int | None = None) -> Iterator[Record]:
        """One run's records, reading only the segments the index names for it (after
        catching up with what other processes appended); ``until_seq``: the run's last
        record, known from the workspace's projection, so the read stops there instead of
        passing over the rest of the segment."""
        self.refresh()
        if self.index_problem is not None:
            raise self.index_problem
        if until_seq is not None and from_seq > until_seq:
            return iter(())
        if until_seq is not None and until_seq - from_seq < _DIRECT_SPAN and \
                run not in self._loaded:
            # both ends known (its first and last record, from the workspace projection):
            # passing over the few records between costs less than finding the run's lines
            # in runs.idx (a search of the whole file, or one pass once many are asked for)
            return (record for _, record in self._scan(from_seq, run=run, until=until_seq)
                    if record.run == run)
        self._load_run(run)
        segments = set(self._index.get(run, ()))
        if not segments or from_seq > self._last_of.get(run, self._opened_seq):
            return iter(())
        return (record for _, record in self._scan(from_seq, only=segments, run=run,
                                                   until=until_seq)
                if record.run == run)

    def runs(self) -> list[str]:
        self.refresh()
        if self.index_problem is not None:
            raise self.index_problem
        self._load_index()
        first = self._first
        return sorted(self._index, key=lambda run: min(first[run, s] for s in self._index[run]))

    def has_run(self, run: str) -> bool:
        """Whether the run has records (other processes' appends included)."""
        self._load_run(run)
        if run not in self._index:
            self.refresh()
        return run in self._index
