"""Following the event log as it grows: the records after a seq, then each new one.

A :class:`LogTail` keeps its place (segment and byte offset) so that every poll reads only
what was appended since the last one, by this process or any other; it never takes the
log's lock and reads complete lines only (a line still being written is read next time).
"""

from __future__ import annotations

import os
from pathlib import Path

from aiosrun.runtime.log.eventlog import Record, decode, line_seq


class LogTail:
    def __init__(self, folder: Path, after_seq: int = 0) -> None:
        self.folder = folder
        self.after_seq = after_seq
        self._segment: Path | None = None
        self._offset = 0
        self._line = 0

    def _segments(self) -> list[Path]:
        return sorted(self.folder.glob("*.jsonl"))

    def _start(self) -> bool:
        segments = self._segments()
        if not segments:
            return False
        chosen = segments[0]
        for segment in segments:
            if int(segment.stem) <= self.after_seq + 1:
                chosen = segment
        self._segment, self._offset, self._line = chosen, 0, 0
        return True

    def poll(self) -> list[Record]:
        """The complete records appended since the last poll (after ``after_seq``)."""
        if self._segment is None and not self._start():
            return []
        out: list[Record] = []
        while True:
            assert self._segment is not None
            try:
                size = os.stat(self._segment).st_size
            except FileNotFoundError:
                return out
            if size > self._offset:
                with open(self._segment, "rb") as handle:
                    handle.seek(self._offset)
                    data = handle.read(size - self._offset)
                end = data.rfind(b"\n") + 1
                for line in data[:end].splitlines(keepends=True):
                    self._line += 1
                    if line_seq(line) <= self.after_seq:
                        continue
                    record = decode(line, self._segment, self._line)
                    self.after_seq = record.seq
                    out.append(record)
                self._offset += end
                if end < len(data):
                    return out  # a line still being written: the rest next time
            following = [s for s in self._segments() if s.name > self._segment.name]
            if not following:
                return out
            self._segment, self._offset, self._line = following[0], 0, 0
