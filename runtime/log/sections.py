"""The workspace snapshot on disk: a small head, then the bulk in checksummed blocks.

A long history's workspace projection is mostly run summaries (7 MB of them at 1,000,000
records) and the maps of event ids and keys the Engine deduplicates with. The read commands
need little of it: ``status RUN`` one summary, ``runs`` the latest few, ``inbox`` the waiting
runs and the rejected events; parsing all of it was most of what they cost. So the file
``.aios/snapshots/workspace.snapshot`` is::

    aiosrun-workspace-snapshot 3 head=BYTES body=BYTES crc32=CRC-OF-THE-HEAD
    {the head: last_seq, playbooks and versions, spend, rejected events, the summaries of
     the waiting runs, and each block's offset, length and CRC32}
    the blocks: run summaries in the order the runs started (256 a block); (id, block)
    pairs sorted by id, to find one run's block; the event and idempotency maps

A reader parses the head and only the blocks it needs, each checked against its CRC32 as
it is read; the whole projection (the Engine's) reads and checks every block. The file is
written beside its place and renamed over it, so a crash leaves the old snapshot or the new
one. A file shorter than its header says (a power cut before its bytes reached the disk)
counts as none: the projection is folded from the log again, which is the truth. A head or
block that does not match its checksum is refused, as every derived file is, until
``doctor --rebuild``.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import json
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiosrun.runtime.log.projections import (
    RunSummary,
    SnapshotCorrupted,
    Version,
    WorkspaceState,
)

LAYOUT = 3
BLOCK_ROWS = 256
_MAGIC = b"aiosrun-workspace-snapshot "
_HEADER = re.compile(rb"aiosrun-workspace-snapshot (\d+) head=(\d+) body=(\d+) "
                     rb"crc32=([0-9a-f]{8})\n")
_MAPS = ("pending_events", "event_keys", "event_ids", "idempotency_keys")
_FIRST_READ = 64 * 1024
_HEAD_KEYS = frozenset({"last_seq", "current", "versions", "spend", "rejected", "waiting",
                        "runs", "ids", "maps"})


def _row(summary: RunSummary) -> list[Any]:
    s = summary
    return [s.id, s.playbook, s.status, s.started_at, s.parent, s.open, s.last_seq, s.first_seq]


def encode(state: WorkspaceState) -> bytes:
    """The snapshot file's bytes for ``state``."""
    chunks: list[bytes] = []
    size = 0
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def block(value: Any) -> list[int]:
        nonlocal size
        data = (dumps(value) + "\n").encode("utf-8")
        chunks.append(data)
        entry = [size, len(data), zlib.crc32(data)]
        size += len(data)
        return entry

    rows = [_row(s) for s in state.runs.values()]
    runs = [block(rows[at:at + BLOCK_ROWS]) for at in range(0, len(rows), BLOCK_ROWS)]
    pairs = sorted((row[0], number // BLOCK_ROWS) for number, row in enumerate(rows))
    ids = [[pairs[at][0], *block(pairs[at:at + BLOCK_ROWS])]
           for at in range(0, len(pairs), BLOCK_ROWS)]
    maps = {name: block(getattr(state, name)) for name in _MAPS}
    head = {"layout": LAYOUT, "last_seq": state.last_seq, "current": state.current,
            "versions": [[v.name, v.digest, v.source, v.commit, v.seq]
                         for v in state.versions.values()],
            "spend": state.spend, "rejected": state.rejected,
            "waiting": [row for row in rows if row[2] == "waiting"],
            "count": len(rows), "runs": runs, "ids": ids, "maps": maps}
    text = dumps(head).encode("utf-8")
    header = f"{LAYOUT} head={len(text)} body={size} crc32={zlib.crc32(text):08x}\n"
    return b"".join([_MAGIC, header.encode(), text, b"\n", *chunks])


def write(path: Path, state: WorkspaceState) -> bool:
    """Write atomically (a temporary file renamed over the old one); False when it could
    not be. A snapshot only saves folding time, so one that cannot be written (a full disk,
    a read-only folder) is left out; what a writer killed before its rename left behind is
    removed by the next."""
    data = encode(state)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(data)
        temporary.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
        return False
    for left in path.parent.glob(f".{path.name}.*.tmp"):
        pid = left.name.split(".")[-2]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                left.unlink()
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class SnapshotFile:
    """An opened snapshot: its head parsed, its blocks read (and checked) when asked for.
    It holds the file open, so a snapshot renamed over it meanwhile changes nothing."""

    def __init__(self, path: Path, fd: int, head: dict[str, Any], body: int) -> None:
        self.path, self._fd, self.head, self._body = path, fd, head, body
        self.last_seq: int = head["last_seq"]
        self._blocks: dict[tuple[str, int], Any] = {}
        self._firsts: list[str] | None = None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> SnapshotFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, entry: list[Any]) -> bytes:
        offset, length, crc = entry[-3:]
        data = os.pread(self._fd, length, self._body + offset)
        if len(data) != length or zlib.crc32(data) != crc:
            raise _corrupted(self.path)
        return data

    def _block(self, kind: str, number: int) -> Any:
        key = (kind, number)
        value = self._blocks.get(key)
        if value is None:
            raw = json.loads(self._read(self.head[kind][number]))
            value = self._blocks[key] = dict(raw) if kind == "ids" else \
                {row[0]: row for row in raw}
        return value

    @property
    def rejected(self) -> dict[str, dict[str, Any]]:
        rejected: dict[str, dict[str, Any]] = self.head["rejected"]
        return rejected

    def waiting(self) -> list[RunSummary]:
        """The runs that waited for something when the snapshot was saved."""
        return [RunSummary(*row) for row in self.head["waiting"]]

    def summary(self, run_id: str) -> RunSummary | None:
        """One run's summary: a search in the head, then two blocks."""
        if self._firsts is None:
            self._firsts = [entry[0] for entry in self.head["ids"]]
        at = bisect.bisect_right(self._firsts, run_id) - 1
        if at < 0:
            return None
        number = self._block("ids", at).get(run_id)
        if number is None:
            return None
        row = self._block("runs", number).get(run_id)
        return None if row is None else RunSummary(*row)

    def latest(self) -> Iterator[RunSummary]:
        """Every run's summary, the latest started first, a block at a time."""
        for number in reversed(range(len(self.head["runs"]))):
            for row in reversed(self._block("runs", number).values()):
                yield RunSummary(*row)

    def state(self) -> WorkspaceState:
        """The whole projection, every block checked. Read with the cyclic collector
        paused: a long history is hundreds of thousands of small acyclic objects."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            head = self.head
            runs: dict[str, RunSummary] = {}
            for entry in head["runs"]:
                for row in json.loads(self._read(entry)):
                    runs[row[0]] = RunSummary(*row)
            for entry in head["ids"]:
                self._read(entry)  # checked, not needed
            maps = {name: json.loads(self._read(head["maps"][name])) for name in _MAPS}
            return WorkspaceState(
                current=head["current"],
                versions={row[1]: Version(*row) for row in head["versions"]},
                runs=runs, last_seq=head["last_seq"],
                pending_events={int(k): v for k, v in maps["pending_events"].items()},
                event_keys=maps["event_keys"], event_ids=maps["event_ids"],
                idempotency_keys=maps["idempotency_keys"], rejected=head["rejected"],
                spend=head["spend"])
        finally:
            if enabled:
                gc.enable()


def _corrupted(path: Path) -> SnapshotCorrupted:
    return SnapshotCorrupted(f"{path}: the snapshot does not match its checksum (edited or "
                             "damaged); snapshots are derived from the log: `aiosrun doctor "
                             "--rebuild` rebuilds them")


def open_snapshot(path: Path) -> SnapshotFile | None:
    """The snapshot at ``path``; None when there is none, when it is shorter than its header
    says (torn by a power cut) or of another layout. Raises :class:`SnapshotCorrupted` when
    its head does not match its checksum."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SnapshotCorrupted(f"{path}: unreadable snapshot ({exc})") from None
    try:
        size = os.fstat(fd).st_size
        start = os.pread(fd, _FIRST_READ, 0)
        if not start or (len(start) == size and b"\n" not in start):
            raise _Torn
        found = _HEADER.match(start)
        if found is None:
            if _MAGIC.startswith(start[:len(_MAGIC)]) and b"\n" not in start:
                raise _Torn
            raise _corrupted(path)
        if int(found[1]) != LAYOUT:
            raise _Torn  # another layout: it only costs a fold from the log
        head_at, head_size, body_size = found.end(), int(found[2]), int(found[3])
        body = head_at + head_size + 1
        text = start[head_at:head_at + head_size]
        if len(text) < head_size:
            text = os.pread(fd, head_size, head_at)
        if len(text) < head_size:
            raise _Torn
        if zlib.crc32(text) != int(found[4], 16):
            raise _corrupted(path)
        head = json.loads(text)
        if not isinstance(head, dict) or not head.keys() >= _HEAD_KEYS:
            raise _Torn  # not what this version writes: folded from the log instead
        if size != body + body_size:
            _short(path, fd, head, body, size)
    except _Torn:
        os.close(fd)
        return None
    except ValueError:
        os.close(fd)
        raise _corrupted(path) from None
    except BaseException:
        os.close(fd)
        raise
    return SnapshotFile(path, fd, head, body)


def _short(path: Path, fd: int, head: dict[str, Any], body: int, size: int) -> None:
    """A file of another size than its header says: torn (raises :class:`_Torn`) when it is
    shorter and every block it holds whole matches its checksum, else edited."""
    blocks = [*head["runs"], *(entry[1:] for entry in head["ids"]), *head["maps"].values()]
    if size > body + sum(entry[1] for entry in blocks):
        raise _corrupted(path)
    for offset, length, crc in blocks:
        if body + offset + length <= size and \
                zlib.crc32(os.pread(fd, length, body + offset)) != crc:
            raise _corrupted(path)
    raise _Torn


class _Torn(Exception):
    """A snapshot that never reached the disk whole: none, as far as readers go."""
