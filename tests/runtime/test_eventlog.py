"""The event log: contiguous seq, checksums, torn tails, corruption, segments, the run index,
and several writers on one workspace."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from aiosrun.runtime.log.eventlog import EventLog, LogCorrupted, LogLocked, NewEvent
from hypothesis import given, settings
from hypothesis import strategies as st


def write(folder: Path, count: int, run: str | None = "r1", **options: object) -> EventLog:
    log = EventLog(folder, **options).open()  # type: ignore[arg-type]
    for i in range(count):
        log.append(NewEvent("Tested", {"i": i}, run=run))
    return log


def test_records_round_trip_with_contiguous_seq(tmp_path: Path) -> None:
    log = write(tmp_path, 5)
    records = list(log.read())
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert [r.data["i"] for r in records] == [0, 1, 2, 3, 4]
    assert all(r.ts.endswith("Z") and r.run == "r1" for r in records)
    line = (tmp_path / "000000000001.jsonl").read_text().splitlines()[0]
    assert json.loads(line)["crc"]  # every line carries its checksum
    log.close()
    again = EventLog(tmp_path).open()
    assert again.append(NewEvent("After")).seq == 6


def test_torn_last_line_is_cut_and_reported(tmp_path: Path) -> None:
    write(tmp_path, 3).close()
    segment = tmp_path / "000000000001.jsonl"
    with open(segment, "ab") as handle:
        handle.write(b'{"seq":4,"ts":"2026-')
    log = EventLog(tmp_path).open()
    assert log.repaired is not None and "torn" in log.repaired
    assert log.last_seq == 3
    assert log.append(NewEvent("Next")).seq == 4
    assert [r.seq for r in log.read()] == [1, 2, 3, 4]


def test_corrupt_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, 4).close()
    segment = tmp_path / "000000000001.jsonl"
    lines = segment.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"i":1', b'"i":7')
    segment.write_bytes(b"".join(lines))
    with pytest.raises(LogCorrupted) as info:  # open verifies the whole log
        list(EventLog(tmp_path).open().read())
    assert info.value.line == 2 and info.value.file == segment
    assert "000000000001.jsonl:2: corrupt event log record (checksum mismatch)" in str(info.value)


def test_segments_rotate_and_read_in_order(tmp_path: Path) -> None:
    log = write(tmp_path, 50, segment_bytes=1024)
    assert len(log.segments()) > 3
    assert [r.seq for r in log.read()] == list(range(1, 51))
    assert [r.seq for r in log.read(from_seq=40)] == list(range(40, 51))
    log.close()
    assert EventLog(tmp_path, segment_bytes=1024).open().append(NewEvent("x")).seq == 51


def test_run_index_reads_only_its_segments_and_rebuilds(tmp_path: Path) -> None:
    log = EventLog(tmp_path, segment_bytes=2048).open()
    for i in range(60):
        log.append(NewEvent("Tested", {"i": i}, run="early" if i < 10 else "late"))
    early_segments = {s for s in log._index["early"]}
    assert len(early_segments) < len(log.segments())
    assert [r.data["i"] for r in log.read_run("early")] == list(range(10))
    log.close()
    (tmp_path / "runs.idx").unlink()
    reopened = EventLog(tmp_path, segment_bytes=2048).open()  # stale index: rebuilt from log
    assert [r.data["i"] for r in reopened.read_run("late")] == list(range(10, 60))
    assert reopened.rebuild_index() == 2


def test_a_runs_reader_sees_what_another_writer_appended_since(tmp_path: Path) -> None:
    """A reader that knows a run's last seq still sees a record another log (another
    process's view) appended after it, in this segment or in one begun meanwhile."""
    old = EventLog(tmp_path, segment_bytes=2048).open()
    old.append(NewEvent("Tested", {"i": 0}, run="r"))
    writer = EventLog(tmp_path, segment_bytes=2048).open()
    reader = EventLog(tmp_path, segment_bytes=2048).open()
    assert [r.data["i"] for r in reader.read_run("r")] == [0]
    assert list(reader.read_run("r", 2)) == []  # nothing new: answered without a scan
    reader.append(NewEvent("Tested", {"i": 1}, run="r"))
    writer.append(NewEvent("Tested", {"i": 2}, run="r"))
    assert [r.data["i"] for r in reader.read_run("r", 3)] == [2]
    for i in range(3, 40):  # the writer fills segments: the reader follows it
        writer.append(NewEvent("Tested", {"i": i}, run="other" if i < 39 else "r"))
    assert len(writer.segments()) > 1
    assert [r.data["i"] for r in reader.read_run("r", 4)] == [39]
    assert list(reader.read_run("never")) == []
    for log in (old, writer, reader):
        log.close()


def test_always_fsync_policy(tmp_path: Path) -> None:
    log = write(tmp_path, 3, fsync="always")
    assert not log._dirty
    assert [r.seq for r in log.read()] == [1, 2, 3]


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from aiosrun.runtime.log.eventlog import EventLog, NewEvent
    log = EventLog(Path(sys.argv[1])).open()
    for i in range(int(sys.argv[3])):
        log.append_many([NewEvent("Tested", {"who": sys.argv[2], "i": i}, run=sys.argv[2])] * 2)
    log.close()
""")


def test_two_processes_never_interleave_or_lose_records(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), who, "300"])
             for who in ("a", "b")]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    records = list(EventLog(tmp_path).open().read())
    assert [r.seq for r in records] == list(range(1, 1201))
    for who in ("a", "b"):
        mine = [r.data["i"] for r in records if r.data["who"] == who]
        assert mine == sorted(mine) and len(mine) == 600
    for first, second in zip(records[::2], records[1::2], strict=True):
        assert first.data == second.data  # a batch of two stays together


def test_a_stuck_lock_times_out_with_a_clear_message(tmp_path: Path) -> None:
    log = EventLog(tmp_path, lock_timeout=0.2).open()
    fd = os.open(tmp_path / "lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(LogLocked, match="another aiosrun process"):
            log.append(NewEvent("Blocked"))
    finally:
        os.close(fd)
    assert log.append(NewEvent("Free")).seq == 1


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(st.text(max_size=30), min_size=1, max_size=4), max_size=12),
       cut=st.integers(min_value=0, max_value=400))
def test_log_survives_any_torn_tail(tmp_path_factory: pytest.TempPathFactory,
                                    batches: list[list[str]], cut: int) -> None:
    """Whatever is written, a tail torn anywhere inside the last line is cut at reopen and
    every earlier record reads back exactly; nothing before it is lost."""
    folder = tmp_path_factory.mktemp("log")
    log = EventLog(folder).open()
    written = [r for batch in batches
               for r in log.append_many([NewEvent("T", {"s": s}, run="r") for s in batch])]
    log.sync()  # no close(): as after a crash mid-append (close seals what it wrote)
    segment = folder / "000000000001.jsonl"
    data = segment.read_bytes()
    last_start = data.rfind(b"\n", 0, max(len(data) - 1, 0)) + 1
    torn = data[: last_start + min(cut, max(len(data) - last_start - 1, 0))] if data else data
    segment.write_bytes(torn)
    reopened = EventLog(folder).open()
    read = list(reopened.read())
    expected = written if torn == data else written[:-1]
    assert [(r.seq, dict(r.data)) for r in read] == [(r.seq, dict(r.data)) for r in expected]
    assert reopened.append(NewEvent("Next")).seq == len(expected) + 1


@settings(max_examples=40, deadline=None)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_a_flipped_byte_is_never_read_silently(tmp_path_factory: pytest.TempPathFactory,
                                               position: int, flip: int) -> None:
    folder = tmp_path_factory.mktemp("log")
    write(folder, 6).close()
    segment = folder / "000000000001.jsonl"
    data = bytearray(segment.read_bytes())
    index = position % len(data)
    data[index] ^= flip
    segment.write_bytes(bytes(data))
    try:
        log = EventLog(folder).open()
        records = list(log.read())
    except LogCorrupted:
        return
    # Only a damaged *last* line may disappear (treated as torn); the rest must be intact.
    assert [r.data["i"] for r in records] == list(range(len(records)))
    assert len(records) >= 5


def test_index_watermarks_bound_the_reindex_after_a_crash(tmp_path: Path) -> None:
    log = EventLog(tmp_path).open()
    for i in range(0, 2500, 100):
        log.append_many([NewEvent("Tested", {"i": j}, run="r") for j in range(i, i + 100)])
    # no close(): as after a crash, only the watermarks written along the way exist
    marks = [" ".join(line.split(" #")[0].split()[:2])  # (then where the next record starts)
             for line in (tmp_path / "runs.idx").read_text().splitlines()
             if line.startswith("@ ")]
    assert marks == ["@ 1000", "@ 2000"]
    reopened = EventLog(tmp_path).open()
    assert reopened._indexed_seq == 2500 and reopened.runs() == ["r"]
