"""runs.marks keeps the seals, watermarks and clean closes of runs.idx's checkpointed prefix
parsed, so an open parses only those written since; and a read that starts far past a known
line start halves the bytes to it. Both must give exactly what the full parse and the full
pass give, and anything stale, torn or altered must fall back to them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiosrun.runtime.log import eventlog
from aiosrun.runtime.log.eventlog import EventLog, NewEvent
from aiosrun.runtime.log.marks import MARKS
from aiosrun.runtime.log.seek import nearer
from aiosrun.runtime.log.storage import sign, unsign
from hypothesis import Phase, given, settings
from hypothesis import strategies as st


def _marks_of(log: EventLog) -> tuple[Any, ...]:
    return (log._seals, log._sealed_stat, log._hints, log._indexed_seq, log._closed_seq,
            log._index_line, log._index_offset, log.index_problem, log.last_seq)


def _abandoned(log: EventLog) -> tuple[Any, ...]:
    """What the open gave; its files are closed without the close's seal, so the next
    open finds runs.idx as this one did."""
    found = _marks_of(log)
    for fd in (log._fd, log._lock_fd):
        if fd is not None:
            os.close(fd)
    log._fd = log._lock_fd = None
    return found


def _parsed(folder: Path) -> tuple[Any, ...]:
    """What an open gives with no runs.marks to start from (the file left as it was)."""
    kept = (folder / MARKS).read_bytes() if (folder / MARKS).exists() else None
    (folder / MARKS).unlink(missing_ok=True)
    found = _abandoned(EventLog(folder).open())
    if kept is not None:
        (folder / MARKS).write_bytes(kept)
    return found


def _opened(folder: Path) -> tuple[Any, ...]:
    return _abandoned(EventLog(folder).open())


def _scanned(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the runs.idx bytes searched for marks from now on."""
    sizes: list[int] = []
    search = eventlog._mark_starts

    def spy(data: bytes) -> list[int]:
        sizes.append(len(data))
        return search(data)

    monkeypatch.setattr(eventlog, "_mark_starts", spy)
    return sizes


@settings(max_examples=20, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(st.lists(st.lists(st.tuples(st.integers(0, 5), st.integers(1, 250)), max_size=6),
                min_size=1, max_size=6))
def test_an_open_from_saved_marks_equals_a_full_parse(
        tmp_path_factory: pytest.TempPathFactory,
        sessions: list[list[tuple[int, int]]]) -> None:
    folder = tmp_path_factory.mktemp("log")
    for batches in sessions:  # each a process: appends, rotations, a clean close
        with EventLog(folder, segment_bytes=6_000) as log:
            for run, size in batches:
                log.append_many([NewEvent("E", {"i": i, "pad": "x" * 30}, run=f"r{run}")
                                 for i in range(size)])
        assert _opened(folder) == _parsed(folder)  # marks saved by an earlier open, or none
        assert _opened(folder) == _parsed(folder)  # and those of this one


def _closed_often(folder: Path) -> None:
    for session in range(4):
        with EventLog(folder, segment_bytes=6_000) as log:
            for batch in range(30):
                log.append_many([NewEvent("E", {"i": i, "pad": "x" * 30},
                                          run=f"r{session}-{batch % 3}") for i in range(12)])
    for segment in folder.glob("*.jsonl"):  # written a second before their seals
        stat = os.stat(segment)
        os.utime(segment, ns=(stat.st_atime_ns, stat.st_mtime_ns - 1_000_000_000))
    EventLog(folder).open().close()  # verifies them (their time changed), seals them again


def test_an_open_parses_only_the_marks_written_since_those_saved(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _closed_often(tmp_path)
    for _ in range(2):  # a read's open saves the marks of the checkpointed prefix
        EventLog(tmp_path).open().close()
    index = (tmp_path / "runs.idx").stat().st_size
    sizes = _scanned(monkeypatch)
    assert _opened(tmp_path) == _parsed(tmp_path)
    assert sizes[0] == 0 and sizes[1] == index  # runs.marks as saved; then none


def test_marks_of_a_shorter_prefix_are_carried_on(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _closed_often(tmp_path)
    EventLog(tmp_path).open().close()
    saved = (tmp_path / "runs.marks").read_bytes()
    with EventLog(tmp_path) as log:  # a writer's close extends the checkpoint
        log.append_many([NewEvent("E", {"i": i}, run="late") for i in range(50)])
    (tmp_path / "runs.marks").write_bytes(saved)
    sizes = _scanned(monkeypatch)
    assert _opened(tmp_path) == _parsed(tmp_path)
    assert 0 < sizes[0] < (tmp_path / "runs.idx").stat().st_size / 4


@pytest.mark.parametrize("damage", ["flip", "torn", "layout", "other index"])
def test_damaged_or_foreign_marks_are_ignored_and_written_anew(tmp_path: Path,
                                                               damage: str) -> None:
    _closed_often(tmp_path)
    EventLog(tmp_path).open().close()
    path = tmp_path / MARKS
    text = path.read_text()
    assert '"hints":{}' not in text
    if damage == "flip":
        path.write_text(text.replace('"indexed_seq":', '"indexed_seq":1', 1))
    elif damage == "torn":
        path.write_text(text[: len(text) // 2])
    elif damage == "layout":  # a later aiosrun's layout, correctly signed
        body = unsign(text.rstrip("\n"))
        assert body is not None
        path.write_text(sign(body.replace('"layout":1', '"layout":2')) + "\n")
    else:  # doctor --rebuild rewrote runs.idx: the marks name bytes no longer there
        log = EventLog(tmp_path).open()
        log.rebuild_index()
        log.close()
        _closed_often(tmp_path)  # and it grew past them again
        index = (tmp_path / "runs.idx").read_bytes()
        old = json.loads(unsign(text.rstrip("\n")) or "{}")
        old["size"] = index.rfind(b"\n", 0, old["size"]) + 1  # a line end of the new one
        path.write_text(sign(json.dumps(old)) + "\n")
    damaged = path.read_bytes()
    expected = _parsed(tmp_path)
    assert _opened(tmp_path) == expected
    assert path.read_bytes() != damaged
    assert _opened(tmp_path) == expected


def test_a_read_only_log_opens_without_writing_marks(small_disk: Path) -> None:
    """On a file system remounted read-only (small_disk: a real tmpfs), as root too."""
    folder = small_disk / "log"
    _closed_often(folder)
    (folder / MARKS).unlink(missing_ok=True)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    log = EventLog(folder).open()
    assert log.read_only and not (folder / MARKS).exists()
    assert list(log.read())  # and it reads
    log.close()


def _big_log(folder: Path) -> list[eventlog.Record]:
    with EventLog(folder) as log:
        for batch in range(400):
            log.append_many([NewEvent("E", {"i": i, "pad": "y" * (batch % 50)},
                                          run=f"r{batch % 9}") for i in range(5)])
        return list(log.read())


@settings(max_examples=30, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(st.data())
def test_halving_to_a_record_lands_on_a_line_at_or_before_it(
        tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    folder = tmp_path_factory.mktemp("log")
    _big_log(folder)
    segment = sorted(folder.glob("*.jsonl"))[0]
    body = segment.read_bytes()
    starts = [0, *[i + 1 for i, byte in enumerate(body) if byte == 10][:-1]]
    want = data.draw(st.integers(1, len(starts)))
    with open(segment, "rb") as handle:
        seq, position = nearer(handle, 1, 0, len(body), want)
    assert 1 <= seq <= want and position == starts[seq - 1]
    assert want - seq < 64  # within a few lines of it, not at the start given


def test_a_landing_line_that_fails_its_checksum_is_not_used(tmp_path: Path) -> None:
    _big_log(tmp_path)
    segment = sorted(tmp_path.glob("*.jsonl"))[0]
    with open(segment, "rb") as handle:
        seq, position = nearer(handle, 1, 0, segment.stat().st_size, 1500)
    data = bytearray(segment.read_bytes())
    data[position + 40] ^= 0x01
    segment.write_bytes(bytes(data))
    with open(segment, "rb") as handle:
        assert nearer(handle, 1, 0, len(data), 1500) == (1, 0)
    assert seq > 1


def test_bounded_run_reads_of_a_fresh_process_equal_a_full_scan(tmp_path: Path) -> None:
    whole = _big_log(tmp_path)
    EventLog(tmp_path).open().close()
    for run in range(9):
        mine = [r for r in whole if r.run == f"r{run}"]
        for first, last in ((mine[0].seq, mine[-1].seq), (mine[40].seq, mine[45].seq),
                            (mine[100].seq, mine[100].seq)):
            log = EventLog(tmp_path).open()  # no seek marks: it starts from runs.idx's
            got = list(log.read_run(f"r{run}", first, last))
            log.close()
            assert got == [r for r in mine if first <= r.seq <= last]
