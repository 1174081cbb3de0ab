"""Storage faults on a real filesystem: a full disk refuses a batch whole and keeps every file
readable; writing resumes once space returns."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiosrun.adapters.effects import EffectsLedger, LedgerFull
from aiosrun.runtime.log.eventlog import EventLog, NewEvent
from aiosrun.runtime.log.storage import StorageFull

from tests.support.disks import fill


def test_a_full_disk_refuses_the_batch_and_the_log_stays_readable(small_disk: Path) -> None:
    log = EventLog(small_disk / "log").open()
    log.append(NewEvent("Before", run="r"))
    filler = fill(small_disk)
    appended = 1
    with pytest.raises(StorageFull, match="no space left on device, nothing was recorded"):
        for i in range(1000):  # the page's slack takes a few; then a write comes up short
            log.append_many([NewEvent("Big", {"blob": "x" * 1500, "i": i}, run="r")] * 3)
            appended += 3
    assert log.last_seq == appended
    reader = EventLog(small_disk / "log").open()  # what every other command sees
    assert reader.repaired is None
    assert [r.seq for r in reader.read()] == list(range(1, appended + 1))
    assert len(list(reader.read_run("r"))) == appended
    reader.close()
    filler.unlink()  # space returns: appending goes on where it stopped
    assert log.append(NewEvent("After", run="r")).seq == appended + 1
    log.close()
    again = EventLog(small_disk / "log").open()
    assert [r.seq for r in again.read()] == list(range(1, appended + 2))


def test_a_full_disk_never_leaves_half_a_ledger_line(small_disk: Path) -> None:
    path = small_disk / "effects" / "files.jsonl"
    with EffectsLedger(path) as ledger:
        ledger.record("k0", "done", result={"n": 0})
    filler = fill(small_disk)
    written = 1
    with pytest.raises(LedgerFull, match="no space left on device, nothing was recorded"), \
            EffectsLedger(path) as ledger:
        for i in range(1, 10000):
            ledger.record(f"k{i}", "done", result={"n": i, "pad": "y" * 700})
            written += 1
    filler.unlink()
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == written and all(line.endswith(b"\n") for line in lines)
    with EffectsLedger(path) as ledger:
        assert ledger.done(f"k{written - 1}") is not None and ledger.done(f"k{written}") is None
        ledger.record(f"k{written}", "done", result={"n": written})
    with EffectsLedger(path) as ledger:
        assert ledger.done(f"k{written}") == {"n": written}
