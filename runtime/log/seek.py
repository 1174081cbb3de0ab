"""Where records sit in the segment files, so a read from a seq starts near it.

A reader that wants the records after seq N (a long-lived process catching its projection up,
the interpreter checking for a cancel, one run's history) used to read every line of the
segment before N: its cost grew with the workspace's history, not with what it asked for.
Every ``STRIDE``-th record's byte offset is noted as records pass by (appended, caught up,
verified at open, scanned), per segment file; a read seeks to the nearest mark at or before
the seq it wants. Marks are keyed by the file's inode: a segment that a redaction replaced
starts without any, as its offsets changed.
"""

from __future__ import annotations

import bisect
import zlib
from typing import BinaryIO

STRIDE = 64


class SeekMarks:
    """``(seq, offset)`` marks per segment file, in increasing order."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[int, list[int], list[int]]] = {}

    def _marks(self, name: str, inode: int) -> tuple[list[int], list[int]]:
        known = self._files.get(name)
        if known is None or known[0] != inode:
            known = (inode, [], [])
            self._files[name] = known
        return known[1], known[2]

    def note(self, name: str, inode: int, seq: int, offset: int) -> None:
        """The record ``seq`` starts at byte ``offset`` of the file."""
        seqs, offsets = self._marks(name, inode)
        if not seqs or seq > seqs[-1]:
            seqs.append(seq)
            offsets.append(offset)

    def find(self, name: str, inode: int, first: int, seq: int) -> tuple[int, int]:
        """The last mark at or before ``seq``: ``(its seq, its offset)``, or the file's start
        (``first`` is the segment's first seq)."""
        seqs, offsets = self._marks(name, inode)
        at = bisect.bisect_right(seqs, seq) - 1
        if at < 0:
            return first, 0
        return seqs[at], offsets[at]


_PROBE = 4096
_CRC_TAIL = len(',"crc":"') + 8 + len('"}\n')


def _checked(line: bytes) -> bool:
    """Whether a whole line (with its end) carries the checksum of its own text."""
    try:
        return len(line) > _CRC_TAIL and line.endswith(b'"}\n') and \
            zlib.crc32(line[:-_CRC_TAIL] + b"}") == int(line[-11:-3], 16)
    except ValueError:
        return False


def _seq_of(head: bytes) -> int:
    """The seq a line's fixed prefix ``{"seq":N,`` names (0: not such a prefix)."""
    end = head.find(b",", 7)
    return int(head[7:end]) if head.startswith(b'{"seq":') and head[7:end].isdigit() else 0


def nearer(handle: BinaryIO, seq: int, position: int, end: int, want: int) -> tuple[int, int]:
    """A line start nearer before the record ``want`` than ``(seq, position)``, a known line
    start, found by halving the bytes up to ``end`` (past the wanted line) instead of
    passing over every line between: JSON text holds no raw line end, so what follows one
    is a line's ``{"seq":N,``. Only a line whose checksum holds is returned (else the
    start given): what is passed over from it is counted, so its seq must be right."""
    low_seq, low = seq, position
    while end - low > _PROBE:
        middle = (low + end) // 2
        handle.seek(middle)
        chunk = handle.read(_PROBE)
        at = chunk.find(b"\n")
        found = _seq_of(chunk[at + 1:at + 33]) if 0 <= at < len(chunk) - 32 else 0
        if found <= low_seq or middle + at + 1 >= end:
            break  # a line longer than a probe, or bytes that are not a line: stop here
        if found <= want:
            low_seq, low = found, middle + at + 1
        else:
            end = middle + at + 1
    if low == position:
        return seq, position
    handle.seek(low)
    return (low_seq, low) if _checked(handle.readline()) else (seq, position)
