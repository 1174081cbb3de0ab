"""The workspace snapshot read in parts (runtime/log/sections.py) and the read commands on it
(runtime/reading.py): what they answer is what the whole fold of the log answers, whatever
the snapshot covers; a snapshot that is missing, torn, stale or of an earlier layout costs a
fold, never a wrong answer; an edited one is refused; a writer killed mid-write leaves a
readable workspace; and a read's close leaves runs.idx as it is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiosrun.runtime import reading
from aiosrun.runtime.log import sections
from aiosrun.runtime.log.eventlog import LogCorrupted, NewEvent, Record
from aiosrun.runtime.log.projections import (
    RunSummary,
    SnapshotCorrupted,
    WorkspaceState,
    fold_workspace,
    save_snapshot,
)
from aiosrun.runtime.workspace import Workspace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# an operation: (kind, which run or rejection); folded into records by _events
OPS = st.lists(st.tuples(st.sampled_from(["start", "start", "gate", "decide", "end", "wait",
                                          "reject", "dismiss", "emit"]),
                         st.integers(0, 30)), max_size=120)


def _events(ops: list[tuple[str, int]]) -> list[NewEvent]:
    """Records as the Engine appends them: runs that start, wait at gates, are decided and
    end; events rejected and dismissed; other records between."""
    started: list[str] = []
    rejected: list[int] = []
    events: list[NewEvent] = []
    for kind, n in ops:
        run = started[n % len(started)] if started else None
        if kind == "start" or run is None:
            run = f"2026{len(started):04d}-{n:02d}"
            started.append(run)
            events.append(NewEvent("RunStarted", {"playbook": f"p{n % 3}"}, run=run))
        elif kind == "gate":
            events.append(NewEvent("GateOpened", {"gate": f"g{n % 2}"}, run=run))
        elif kind == "decide":
            events.append(NewEvent("GateDecided", {"gate": f"g{n % 2}"}, run=run))
        elif kind == "wait":
            events.append(NewEvent("WaitOpened", {"path": "w"}, run=run))
        elif kind == "end":
            events.append(NewEvent(["RunSucceeded", "RunFailed", "RunCancelled"][n % 3],
                                   {}, run=run))
        elif kind == "reject":
            rejected.append(n)
            events.append(NewEvent("EventRejected", {"seq": n, "playbook": "p", "event": "e",
                                                     "error": "no"}))
        elif kind == "dismiss" and rejected:
            events.append(NewEvent("EventRejectionDismissed", {"id": f"{rejected.pop()}-p"}))
        else:
            events.append(NewEvent("EventEmitted", {"event": "e", "id": str(n)}))
    return events


def _workspace(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n")
    return root


def _record(root: Path, events: list[NewEvent]) -> list[Record]:
    with Workspace(root) as ws:
        return ws.log.append_many(events) if events else []


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sections, "BLOCK_ROWS", 3)  # many blocks from a few runs


def _answers(root: Path) -> tuple[list[RunSummary], dict[str, RunSummary | None],
                                  list[str], list[str], bool]:
    """What a read command sees: every run newest first, each run's summary (and one that
    does not exist), the waiting runs, the rejected events; and whether it had to fold
    the whole projection."""
    with Workspace(root) as ws, reading.summaries(ws) as known:
        latest = list(known.latest())
        one = {s.id: known.summary(s.id) for s in latest}
        one["no-such-run"] = known.summary("no-such-run")
        waiting = sorted(s.id for s in known.waiting())
        return latest, one, waiting, sorted(known.rejected), ws.projection_loaded


def _expected(records: list[Record]) -> tuple[list[RunSummary], dict[str, RunSummary | None],
                                              list[str], list[str]]:
    state = fold_workspace(records)
    latest = list(reversed(state.runs.values()))
    one: dict[str, RunSummary | None] = {s.id: s for s in latest}
    one["no-such-run"] = None
    waiting = sorted(s.id for s in latest if s.status == "waiting")
    return latest, one, waiting, sorted(state.rejected)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, cut=st.floats(0, 1))
def test_reads_of_the_snapshot_and_the_records_after_it_are_the_whole_fold(
        tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int]],
        cut: float) -> None:
    root = _workspace(tmp_path_factory.mktemp("ws"))
    records = _record(root, _events(ops))
    covered = records[:int(len(records) * cut)]
    sections.write(root / ".aios" / "snapshots" / "workspace.snapshot",
                   fold_workspace(covered))
    *seen, folded_whole = _answers(root)
    assert tuple(seen) == _expected(records)
    assert not folded_whole  # the parts were read, not the whole projection


@settings(max_examples=40, deadline=None)
@given(ops=OPS)
def test_the_whole_snapshot_reads_back_as_it_was_saved(ops: list[tuple[str, int]]) -> None:
    from aiosrun.runtime.log.eventlog import Record

    state = WorkspaceState()
    for seq, event in enumerate(_events(ops), 1):
        fold_workspace([Record(seq, "2026-01-01T00:00:00Z", event.type, event.data,
                               event.run)], state)
    state.event_keys, state.idempotency_keys = {"k": 3}, {"i": "r"}
    data = sections.encode(state)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"sections-{os.getpid()}.snapshot"
    try:
        path.write_bytes(data)
        opened = sections.open_snapshot(path)
        assert opened is not None
        with opened:
            assert opened.state() == state
            assert [s.id for s in opened.latest()] == list(reversed(state.runs))
    finally:
        path.unlink(missing_ok=True)


def _history(root: Path) -> list[Record]:
    ops = [("start", i) for i in range(12)] + [("gate", 3), ("end", 4), ("reject", 1),
                                                ("start", 0), ("gate", 1)]
    return _record(_workspace(root), _events(ops))


def _snapshot(root: Path) -> Path:
    return root / ".aios" / "snapshots" / "workspace.snapshot"


def test_no_snapshot_folds_the_log_and_saves_one(tmp_path: Path) -> None:
    records = _history(tmp_path)
    assert not _snapshot(tmp_path).exists()
    with reading.reading(tmp_path) as ws:
        listed = reading.runs(ws, limit=3)
        assert ws.projection_loaded
    assert [r.id for r in listed] == [s.id for s in _expected(records)[0][:3]][::-1]
    assert _snapshot(tmp_path).exists()
    *seen, folded_whole = _answers(tmp_path)
    assert tuple(seen) == _expected(records) and not folded_whole


@pytest.mark.parametrize("keep", [0, 1, 40, 97, -5, -1])
def test_a_torn_snapshot_counts_as_none(tmp_path: Path, keep: int) -> None:
    records = _history(tmp_path)
    with reading.reading(tmp_path) as ws:
        reading.runs(ws)
    data = _snapshot(tmp_path).read_bytes()
    _snapshot(tmp_path).write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])
    *seen, folded_whole = _answers(tmp_path)
    assert tuple(seen) == _expected(records)
    assert folded_whole
    with reading.reading(tmp_path) as ws:  # and is written whole again
        reading.runs(ws)
    assert _snapshot(tmp_path).read_bytes() == data


@pytest.mark.parametrize("where", ["head", "first block", "last block"])
def test_an_edited_snapshot_is_refused_by_the_read_that_passes_over_it(
        tmp_path: Path, where: str) -> None:
    _history(tmp_path)
    with reading.reading(tmp_path) as ws:
        reading.runs(ws)
    data = bytearray(_snapshot(tmp_path).read_bytes())
    head_at = data.index(b"\n") + 1
    body = data.index(b"\n", head_at) + 1
    blocks = json.loads(data[head_at:body])["runs"]
    assert len(blocks) > 2
    at = {"head": head_at + 5, "first block": body + blocks[0][1] // 2,
          "last block": body + blocks[-1][0] + blocks[-1][1] // 2}[where]
    data[at] ^= 1
    _snapshot(tmp_path).write_bytes(bytes(data))
    with pytest.raises(SnapshotCorrupted, match="does not match its checksum"), \
            Workspace(tmp_path) as ws:
        if where == "first block":  # the latest runs do not read it; the whole fold does
            assert len(reading.runs(ws, limit=2)) == 2
            ws.workspace_state()
        else:
            reading.runs(ws, limit=2)


def test_a_snapshot_past_the_log_s_end_is_refused(tmp_path: Path) -> None:
    records = _history(tmp_path)
    state = fold_workspace(records)
    state.last_seq += 5
    sections.write(_snapshot(tmp_path), state)
    with pytest.raises(LogCorrupted, match="records were cut off"), Workspace(tmp_path) as ws:
        reading.runs(ws)


def test_a_snapshot_of_the_earlier_layout_is_read_once_and_saved_anew(tmp_path: Path) -> None:
    records = _history(tmp_path)
    legacy = tmp_path / ".aios" / "snapshots" / "workspace.json"
    save_snapshot(legacy, fold_workspace(records[:-3]))
    *seen, _ = _answers(tmp_path)
    assert tuple(seen) == _expected(records)
    assert not legacy.exists() and _snapshot(tmp_path).exists()
    *seen, folded_whole = _answers(tmp_path)
    assert tuple(seen) == _expected(records) and not folded_whole


def test_a_long_tail_folds_the_whole_projection_and_saves_it(tmp_path: Path) -> None:
    records = _history(tmp_path)
    sections.write(_snapshot(tmp_path), fold_workspace(records[:2]))
    records += _record(tmp_path, [NewEvent("EventEmitted", {"event": "e"})] * 2_000)
    with reading.reading(tmp_path) as ws:
        reading.runs(ws)
        assert ws.projection_loaded
    opened = sections.open_snapshot(_snapshot(tmp_path))
    assert opened is not None
    with opened:
        assert opened.last_seq == records[-1].seq


def test_a_read_of_a_run_between_its_first_and_last_record_is_its_records(
        tmp_path: Path) -> None:
    records = _history(tmp_path)
    state = fold_workspace(records)
    for summary in state.runs.values():
        with Workspace(tmp_path) as ws:  # runs.idx not read for this run
            direct = list(ws.log.read_run(summary.id, summary.first_seq, summary.last_seq))
        assert direct == [r for r in records if r.run == summary.id]


WRITER = """
import sys
from pathlib import Path
from aiosrun.runtime.log import sections
from aiosrun.runtime.workspace import Workspace
ws = Workspace(Path(sys.argv[1]))
state = ws.workspace_state()
print("ready", flush=True)
while True:
    sections.write(ws.root / ".aios" / "snapshots" / "workspace.snapshot", state)
"""


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.07, 0.15])
def test_a_writer_killed_mid_write_leaves_a_readable_workspace(tmp_path: Path,
                                                               delay: float) -> None:
    records = _history(tmp_path)
    records += _record(tmp_path, [NewEvent("RunStarted", {"playbook": "p"}, run=f"r{i:05d}")
                                  for i in range(20_000)])
    expected = _expected(records)
    sections.write(_snapshot(tmp_path), fold_workspace(records[:-1]))  # the one replaced
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    time.sleep(delay)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    opened = sections.open_snapshot(_snapshot(tmp_path))
    assert opened is not None  # the old snapshot or the new one, whole
    with opened:
        assert opened.last_seq in (records[-1].seq, records[-2].seq)
    *seen, _ = _answers(tmp_path)
    assert tuple(seen) == expected
    leftovers = list(_snapshot(tmp_path).parent.glob(".workspace.snapshot.*.tmp"))
    sections.write(_snapshot(tmp_path), fold_workspace(records))
    assert not any(path.exists() for path in leftovers)  # the next writer clears them up
    *seen, folded_whole = _answers(tmp_path)
    assert tuple(seen) == expected and not folded_whole


def test_a_close_that_has_nothing_to_add_leaves_runs_idx_as_it_is(tmp_path: Path) -> None:
    _history(tmp_path)
    index = tmp_path / ".aios" / "log" / "runs.idx"
    sizes = []
    for _ in range(4):
        time.sleep(0.06)  # past the racy window of the last seal (see EventLog._untouched)
        with Workspace(tmp_path) as ws:
            reading.runs(ws)
        sizes.append(index.stat().st_size)
    assert sizes[2] == sizes[3]  # once sealed with a trusted stat, a read writes nothing
    records = _record(tmp_path, [NewEvent("EventEmitted", {"event": "e"})])
    time.sleep(0.06)
    with Workspace(tmp_path) as ws:
        assert ws.log.last_seq == records[-1].seq
    assert index.stat().st_size > sizes[3]  # an append is sealed and closed as before
