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
