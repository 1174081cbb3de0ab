"""Opening a log that was closed cleanly reads its seals and the end of its last line, not
its segments: a file untouched since its seal (same inode, size and modification time) is
not read again. A file written to since is verified in full; what reads a record still
checks its checksum; runs.idx's byte offsets let a fresh process seek without a pass over
the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from aiosrun.runtime.log.eventlog import EventLog, LogCorrupted, NewEvent


def _written(folder: Path) -> list[Path]:
    """A log closed cleanly, its files last written a second before their seals (a seal
    made right after a write is not trusted: the next open verifies, its close seals)."""
    with EventLog(folder, segment_bytes=8_000) as log:
        for batch in range(60):
            log.append_many([NewEvent("E", {"i": i, "pad": "x" * 40}, run=f"r{batch % 7}")
                             for i in range(5)])
    segments = sorted(folder.glob("*.jsonl"))
    assert len(segments) > 3
    for segment in segments:
        stat = os.stat(segment)
        os.utime(segment, ns=(stat.st_atime_ns, stat.st_mtime_ns - 1_000_000_000))
    EventLog(folder).open().close()  # verifies them all (their time changed), seals again
    return segments


def _flip(segment: Path, *, keep_time: bool) -> None:
    before = os.stat(segment)
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0x01
    segment.write_bytes(bytes(data))
    if keep_time:  # as if the bytes changed under the file system (its stat says nothing)
        os.utime(segment, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_an_untouched_sealed_segment_is_not_read_at_open(tmp_path: Path) -> None:
    segments = _written(tmp_path)
    _flip(segments[1], keep_time=True)
    log = EventLog(tmp_path).open()  # had it read the segment, the flip would stop it
    assert log.last_seq == 300 and log.index_problem is None
    with pytest.raises(LogCorrupted, match="checksum mismatch"):
        list(log.read())  # a reader that passes over the record still catches it
    assert log.append(NewEvent("Next")).seq == 301


def test_a_segment_written_since_its_seal_is_verified_in_full(tmp_path: Path) -> None:
    segments = _written(tmp_path)
    _flip(segments[1], keep_time=False)
    with pytest.raises(LogCorrupted, match=r"differs from what was recorded|checksum"):
        EventLog(tmp_path).open()


def test_a_cut_sealed_segment_stops_the_open_even_with_its_time_kept(tmp_path: Path) -> None:
    segments = _written(tmp_path)
    before = os.stat(segments[-1])
    lines = segments[-1].read_bytes().splitlines(keepends=True)
    segments[-1].write_bytes(b"".join(lines[:-2]))
    os.utime(segments[-1], ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(LogCorrupted, match="truncated"):
        EventLog(tmp_path).open()


def test_a_fresh_process_seeks_by_the_index_offsets(tmp_path: Path) -> None:
    _written(tmp_path)
    whole = list(EventLog(tmp_path).open().read())
    log = EventLog(tmp_path).open()
    assert log._marks._files == {}  # nothing was passed over at open: no marks
    assert log._lazy is not None  # and runs.idx's run lines wait for their run to be asked
    for run in range(7):
        assert list(log.read_run(f"r{run}")) == [r for r in whole if r.run == f"r{run}"]
    assert sum(len(seqs) for seqs, _ in log._hints.values()) >= 7  # by their offsets
    assert log.runs() == [f"r{run}" for run in range(7)]
    assert list(EventLog(tmp_path).open().read(151)) == whole[150:]


def test_an_offset_that_no_longer_fits_its_line_is_not_used(tmp_path: Path) -> None:
    _written(tmp_path)
    whole = list(EventLog(tmp_path).open().read())
    log = EventLog(tmp_path).open()
    for name, (seqs, offsets) in log._hints.items():  # as after a rewrite moved the lines
        log._hints[name] = (seqs, [offset + 3 for offset in offsets])
    for run in range(7):
        assert list(log.read_run(f"r{run}")) == [r for r in whole if r.run == f"r{run}"]


def test_a_seal_made_right_after_a_write_does_not_vouch_for_the_file(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.append_many([NewEvent("E", {"i": i}) for i in range(20)])
    segment = tmp_path / "000000000001.jsonl"
    _flip(segment, keep_time=True)  # within the same clock tick as the close, it may be
    with pytest.raises(LogCorrupted):
        EventLog(tmp_path).open()


def test_an_edited_index_line_under_the_checkpoint_still_stops_readers(tmp_path: Path) -> None:
    _written(tmp_path)
    index = tmp_path / "runs.idx"
    lines = index.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace(" ", "  ", 1)  # a run line the checkpoint vouched for
    index.write_text("".join(lines))
    log = EventLog(tmp_path).open()
    assert log.index_problem is not None
    with pytest.raises(LogCorrupted, match="altered or damaged index entry"):
        log.runs()
