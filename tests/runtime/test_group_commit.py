"""Durability in a long-lived process: callers waiting for their records to be durable
share fsyncs made in a worker thread, and an fsync that fails stops all further recording."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import trio
from aiosrun.runtime.log.eventlog import EventLog, NewEvent
from aiosrun.runtime.log.group_commit import GroupCommit
from aiosrun.runtime.log.storage import StorageError


def test_concurrent_callers_share_fsyncs_and_each_returns_durable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    log = EventLog(tmp_path, group_window=1e9).open()  # never due on its own
    commits = GroupCommit(log)
    durable_after: list[bool] = []

    async def caller(i: int) -> None:
        await trio.sleep(0)
        record = log.append(NewEvent("E", {"i": i}, run=f"r{i}"))
        await commits.sync()
        durable_after.append(log.durable_seq >= record.seq)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(40):
                nursery.start_soon(caller, i)

    trio.run(main)
    assert durable_after == [True] * 40
    assert 1 <= len(calls) < 40  # shared: later callers found theirs covered
    assert log.durable_seq == log.written_seq == 40
    log.close()


def test_the_engine_hands_a_due_fsync_to_a_thread(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    log = EventLog(tmp_path, group_window=0).open()  # every append is due
    handed: list[int] = []
    log.fsync_hook = lambda: handed.append(log.written_seq)
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    log.append(NewEvent("E", {}, run="r"))
    assert handed == [1] and fsyncs == []  # not on the appender's path
    assert log.durable_seq == 0
    trio.run(GroupCommit(log).sync)
    assert log.durable_seq == 1 and len(fsyncs) == 1
    log.close()


def test_a_failed_fsync_stops_recording_in_this_process(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    log = EventLog(tmp_path, group_window=1e9).open()
    log.append(NewEvent("E", {}, run="r"))

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StorageError, match="did not confirm"):
        trio.run(GroupCommit(log).sync)
    monkeypatch.undo()
    with pytest.raises(StorageError, match="records nothing more"):
        log.append(NewEvent("E", {}, run="r"))  # a second fsync might lie: refuse
    with pytest.raises(StorageError, match="records nothing more"):
        trio.run(GroupCommit(log).sync)
    assert log.last_seq == 1
    log.close()
    with EventLog(tmp_path) as reopened:  # a new process reads what reached the file
        assert [r.seq for r in reopened.read()] == [1]
