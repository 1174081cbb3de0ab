"""Run leases of the JSONL store: one byte of ``.aios/runs.lock`` per run, exclusive within a
process and across processes, dropped by the kernel when its holder is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiosrun.runtime.log.eventlog import EventLog
from aiosrun.runtime.log.jsonl import JsonlStore, _lease_offset

from tests.support.leases import lease_held

HOLD = """
import sys, time
from pathlib import Path
from aiosrun.runtime.log.eventlog import EventLog
from aiosrun.runtime.log.jsonl import JsonlStore
store = JsonlStore(Path(sys.argv[1]), EventLog(Path(sys.argv[1]) / "log").open())
lease = store.lease(sys.argv[2])
print("held" if lease.try_acquire() else "busy", flush=True)
time.sleep(60)
"""


def store_at(state_dir: Path) -> JsonlStore:
    return JsonlStore(state_dir, EventLog(state_dir / "log").open())


def test_a_lease_excludes_another_of_the_same_run_in_the_same_process(tmp_path: Path) -> None:
    store = store_at(tmp_path / ".aios")
    try:
        first = store.lease("r1")
        assert first.try_acquire()
        second = store.lease("r1")
        assert not second.try_acquire()
        second.close()
        other = store.lease("r2")  # another run: another byte
        assert other.try_acquire()
        other.release()
        first.release()
        again = store.lease("r1")
        assert again.try_acquire()
        again.discard()
    finally:
        store.close()
    assert not (tmp_path / ".aios" / "runs").exists()  # no file per run is left behind


def test_a_lease_held_by_a_killed_process_is_free_again(tmp_path: Path) -> None:
    state = tmp_path / ".aios"
    store_at(state).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(state), "r1"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        assert lease_held(tmp_path)
        store = store_at(state)
        try:
            assert not store.lease("r1").try_acquire()
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(timeout=30)
            deadline = time.monotonic() + 10
            while lease_held(tmp_path):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            taken = store.lease("r1")
            assert taken.try_acquire()
            taken.release()
        finally:
            store.close()
    finally:
        holder.kill()
        holder.wait()


def test_run_ids_spread_over_distinct_bytes() -> None:
    offsets = {_lease_offset(f"run-{i:06d}") for i in range(20_000)}
    assert len(offsets) == 20_000
    assert all(0 <= offset < 2**62 for offset in offsets)
