"""Reads that start at a seq, or of one run, seek to a remembered line start instead of
passing over the segment: they must give exactly what a full scan gives, whoever appended,
and a corrupt line found after a seek is still named by its true line number."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiosrun.runtime.log.eventlog import EventLog, LogCorrupted, NewEvent
from hypothesis import Phase, given, settings
from hypothesis import strategies as st


@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 4), st.integers(1, 40)),
                min_size=1, max_size=40),
       st.integers(1, 1200))
def test_seeking_reads_equal_a_full_scan(tmp_path_factory: pytest.TempPathFactory,
                                         batches: list[tuple[bool, int, int]],
                                         start: int) -> None:
    folder = tmp_path_factory.mktemp("log")
    with EventLog(folder, segment_bytes=20_000) as one, \
            EventLog(folder, segment_bytes=20_000) as two:
        for by_two, run, size in batches:  # two writers, interleaved runs, rotations
            log = two if by_two else one
            log.append_many([NewEvent("E", {"i": i}, run=f"r{run}") for i in range(size)])
            list(log.read(max(1, log.last_seq - 300)))  # learn line starts as readers do
        for log in (one, two):
            full = list(log.read())
            assert [r.seq for r in full] == list(range(1, len(full) + 1))
            assert list(log.read(start)) == [r for r in full if r.seq >= start]
            for run in range(5):
                mine = [r for r in full if r.run == f"r{run}"]
                assert list(log.read_run(f"r{run}")) == mine
                assert list(log.read_run(f"r{run}", start)) == [r for r in mine
                                                                if r.seq >= start]


def test_a_corrupt_line_after_a_seek_is_named_by_its_line(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.append_many([NewEvent("E", {"i": i}, run="r") for i in range(600)])
        assert len(list(log.read(520))) == 81  # remembers where seq 512 starts
        segment = log.segments()[0]
        lines = segment.read_bytes().splitlines(keepends=True)
        lines[549] = lines[549].replace(b'"i":549', b'"i":548')
        segment.write_bytes(b"".join(lines))
        with pytest.raises(LogCorrupted) as caught:
            list(log.read(540))
        assert caught.value.line == 550
