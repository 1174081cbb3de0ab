"""The PostgreSQL store on a real server (tests/support/postgres.py): contiguous seq under
concurrent appenders in several processes, checksums and gaps detected, event ids unique,
lease rows taken over only after they expire, snapshots, and the ``store:`` settings."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
from aiosrun.dsl.errors import AiosrunError
from aiosrun.runtime.log.eventlog import (
    LeaseLost,
    LogCorrupted,
    LogError,
    NewEvent,
    StoreUnavailable,
)
from aiosrun.runtime.log.postgres import PostgresStore, public_url
from aiosrun.runtime.log.projections import RunState, StepState
from aiosrun.runtime.workspace import Workspace

from tests.support.receivers import wait_for


def test_appends_read_back_verified_with_a_run_index(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, None)
    try:
        log = store.log
        first = log.append(NewEvent("RunStarted", {"playbook": "p"}, run="r1"))
        log.append_many([NewEvent("StepStarted", {"path": "a"}, run="r1"),
                         NewEvent("EventEmitted", {"event": "x.y", "id": "d1"}),
                         NewEvent("RunStarted", {"playbook": "q"}, run="r2")])
        assert first.seq == 1 and log.last_seq == 4
        assert [r.seq for r in log.read()] == [1, 2, 3, 4]
        assert [r.seq for r in log.read(3)] == [3, 4]
        assert [r.type for r in log.read_run("r1")] == ["RunStarted", "StepStarted"]
        assert [r.seq for r in log.read_run("r1", 2)] == [2]
        assert log.runs() == ["r1", "r2"] and log.has_run("r2") and not log.has_run("r3")
        assert log.append_many([NewEvent("X")], guard=lambda: False) == []
        assert log.last_seq == 4
        with pytest.raises(StoreUnavailable, match="nothing was recorded"):
            log.append(NewEvent("EventEmitted", {"event": "x.y", "id": "d1"}))
        assert [r.seq for r in log.read()] == [1, 2, 3, 4]  # the batch left nothing behind
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("DELETE FROM aios_runs")
        with pytest.raises(LogCorrupted, match="doctor --rebuild"):
            log.check_index()
        assert log.rebuild_index() == 2
        log.check_index()
    finally:
        store.close()


def test_an_altered_row_and_a_missing_row_stop_every_reader(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, None)
    try:
        store.log.append_many([NewEvent("E", {"n": n}, run="r") for n in range(5)])
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("UPDATE aios_events SET line = replace(line, '\"n\":2', '\"n\":7') "
                         "WHERE seq = 3")
        with pytest.raises(LogCorrupted, match="checksum mismatch"):
            list(store.log.read())
        with pytest.raises(LogCorrupted, match="checksum mismatch"):
            list(store.log.read_run("r"))
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("DELETE FROM aios_events WHERE seq = 3")
        with pytest.raises(LogCorrupted, match="seq 4 where 3 was due"):
            list(store.log.read())
    finally:
        store.close()


APPENDER = """\
import sys
from aiosrun.runtime.log.eventlog import NewEvent
from aiosrun.runtime.log.postgres import PostgresStore

store = PostgresStore(sys.argv[1], None)
name = sys.argv[2]
for n in range(int(sys.argv[3])):
    if n % 3 == 0:
        store.log.append_many([NewEvent("E", {"n": n, "k": 0}, run=name),
                               NewEvent("E", {"n": n, "k": 1}, run=name)])
    elif n % 3 == 1:  # a guarded append: under the advisory lock, racing unguarded ones
        store.log.append_many([NewEvent("E", {"n": n}, run=name)], guard=lambda: True)
    else:
        store.log.append(NewEvent("E", {"n": n}, run=name))
store.close()
"""


def test_concurrent_appenders_in_three_processes_leave_no_gap(postgres_url: str,
                                                              tmp_path: Path) -> None:
    script = tmp_path / "append.py"
    script.write_text(APPENDER)
    count = 150
    processes = [subprocess.Popen([sys.executable, str(script), postgres_url, f"w{i}",
                                   str(count)], stderr=subprocess.PIPE, text=True)
                 for i in range(3)]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    store = PostgresStore(postgres_url, None)
    try:
        records = list(store.log.read())
        per_writer = count + len(range(0, count, 3))
        assert [r.seq for r in records] == list(range(1, 3 * per_writer + 1))
        for i in range(3):
            mine = [r.data["n"] for r in store.log.read_run(f"w{i}")]
            assert len(mine) == per_writer and mine == sorted(mine)  # each batch in order
    finally:
        store.close()


def test_a_lease_is_exclusive_renewed_and_taken_over_once_it_expires(postgres_url: str) -> None:
    first = PostgresStore(postgres_url, None, lease_seconds=1.0)
    second = PostgresStore(postgres_url, None, lease_seconds=1.0)
    try:
        held = first.lease("r1")
        assert held.try_acquire()
        assert not second.lease("r1").try_acquire()
        assert not first.lease("r1").try_acquire()  # another lease in the same process too
        time.sleep(2.2)  # past two timeouts: the heartbeat renewed it
        assert not second.lease("r1").try_acquire()
        first.heartbeat.close()  # as if the process were killed: nothing renews it
        time.sleep(1.5)
        taker = second.lease("r1")
        assert taker.try_acquire()
        held.release()  # the old holder's release does not free the new holder's lease
        assert not first.lease("r1").try_acquire()
        taker.release()
        again = first.lease("r1")
        assert again.try_acquire()
        again.release()
    finally:
        first.close()
        second.close()


def test_a_lease_whose_release_the_database_missed_lapses(postgres_url: str) -> None:
    """A release that never reached the database (it was away) leaves the row behind: the
    heartbeat renews only the leases this process holds, so that row lapses and the run is
    taken over (it was renewed for as long as the process lived)."""
    first = PostgresStore(postgres_url, None, lease_seconds=1.0)
    second = PostgresStore(postgres_url, None, lease_seconds=1.0)
    try:
        kept, missed = first.lease("kept"), first.lease("missed")
        assert kept.try_acquire() and missed.try_acquire()
        del first.log.fences["missed"]  # what release() does before its DELETE, which failed
        missed.held = False
        wait_for(lambda: second.lease("missed").try_acquire(), 20, "the left row to lapse")
        time.sleep(1.5)  # past a timeout: the lease still held is renewed all along
        assert not second.lease("kept").try_acquire()
    finally:
        first.close()
        second.close()


def test_connections_the_server_cut_are_replaced(postgres_url: str) -> None:
    """A server restart cuts every connection: the log's next statement says so (nothing
    recorded) and the one after runs on a new connection; a journal's idle connection is
    replaced at once (its holder would otherwise fail the step it serves)."""
    store = PostgresStore(postgres_url, None)
    try:
        store.log.append(NewEvent("E", {"n": 1}))
        with store.journal("effects/files") as entries:
            assert entries == []
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                         "datname = current_database() AND pid <> pg_backend_pid()")
        with pytest.raises(StoreUnavailable, match="nothing was recorded"):
            store.log.append(NewEvent("E", {"n": 2}))
        assert store.log.append(NewEvent("E", {"n": 3})).seq == 2
        with store.journal("effects/files") as entries:
            assert entries == []
        assert [r.data["n"] for r in store.log.read()] == [1, 3]
    finally:
        store.close()


def test_a_lease_taken_over_fences_the_old_holders_appends(postgres_url: str) -> None:
    """The appending statement checks the lease row's token: once another worker holds the
    run, the old holder appends nothing for it (other runs' records still go through)."""
    first = PostgresStore(postgres_url, None, lease_seconds=30.0)
    second = PostgresStore(postgres_url, None, lease_seconds=30.0)
    try:
        held = first.lease("r1")
        assert held.try_acquire()
        first.log.append(NewEvent("StepStarted", {"path": "a"}, run="r1"))
        with psycopg.connect(postgres_url, autocommit=True) as conn:  # as if it stalled
            conn.execute("UPDATE aios_leases SET expires_at = now() - interval '1 second'")
        taker = second.lease("r1")
        assert taker.try_acquire()
        with pytest.raises(LeaseLost, match="another worker has taken this run over"):
            first.log.append(NewEvent("StepSucceeded", {"path": "a"}, run="r1"))
        with pytest.raises(LeaseLost):
            first.log.append_many([NewEvent("StepSucceeded", {"path": "a"}, run="r1")],
                                  guard=lambda: True)
        first.log.append(NewEvent("RunStarted", {"playbook": "p"}, run="r2"))
        second.log.append(NewEvent("StepStarted", {"path": "a"}, run="r1"))
        assert [(r.seq, r.type, r.run) for r in second.log.read()] == [
            (1, "StepStarted", "r1"), (2, "RunStarted", "r2"), (3, "StepStarted", "r1")]
        held.release()
        taker.release()
        first.log.append(NewEvent("RunFailed", {}, run="r1"))  # no lease: not fenced
    finally:
        first.close()
        second.close()


def test_serve_registrations_are_shared_and_lapse(postgres_url: str) -> None:
    first = PostgresStore(postgres_url, None, lease_seconds=1.0)
    second = PostgresStore(postgres_url, None, lease_seconds=1.0)
    try:
        assert not second.serve_running()
        one = first.register_serve()
        two = second.register_serve()
        assert first.serve_running() and second.serve_running()
        one.release()
        two.release()
        assert not first.serve_running()
    finally:
        first.close()
        second.close()


def test_snapshots_are_rows_checked_like_files(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, None)
    try:
        store.log.append(NewEvent("RunStarted", {"playbook": "p"}, run="r1"))
        state = RunState("r1", playbook="p", last_seq=1)
        store.save_run_snapshot(state)
        loaded = store.load_run_snapshot("r1")
        assert loaded is not None and loaded.playbook == "p" and store.has_run_snapshot("r1")
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("UPDATE aios_snapshots SET body = replace(body, '\"p\"', '\"q\"')")
        with pytest.raises(LogError, match="does not match its checksum"):
            store.load_run_snapshot("r1")
        store.clear_snapshots()
        store.save_run_snapshot(RunState("r1", last_seq=9))
        with pytest.raises(LogError, match="records were removed"):
            store.check_covered(store.load_run_snapshot("r1"), "r1")
    finally:
        store.close()


def test_the_password_is_a_secret_reference_and_never_shown(postgres_url: str,
                                                            tmp_path: Path) -> None:
    url = postgres_url.replace("postgres@", "aios@")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE aios LOGIN PASSWORD 'hunter2-secret' SUPERUSER")
    (tmp_path / "aios.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: aiosrun/v1
        kind: Workspace
        store: {{url: "{url}", password: "${{{{ secrets.PG_PASSWORD }}}}"}}
        """))
    with pytest.raises(AiosrunError, match="PG_PASSWORD") as missing:
        Workspace(tmp_path)
    assert "hunter2" not in str(missing.value)
    (tmp_path / ".env").write_text("PG_PASSWORD=hunter2-secret\n")
    ws = Workspace(tmp_path)
    try:
        ws.log.append(NewEvent("E"))
        assert ws.store.url == url and ws.log.last_seq == 1
    finally:
        ws.close()
    assert public_url("postgresql://u:pw@h:5/d") == "postgresql://u:***@h:5/d"


def test_forgetting_rewrites_rows_and_drops_snapshots_that_hold_a_copy(
        postgres_url: str) -> None:
    from aiosrun.runtime.log.scrub import PLACEHOLDER, Scrubber

    text = "Ada prefers invoices in March"
    store = PostgresStore(postgres_url, None)
    try:
        store.log.append_many([NewEvent("StepSucceeded", {"path": "a", "outputs": {"t": text}},
                                        run="r1"),
                               NewEvent("StepSucceeded", {"path": "b", "outputs": 1},
                                        run="r2")])
        store.save_run_snapshot(RunState("r1", outputs={"t": text}, last_seq=1))
        store.save_run_snapshot(RunState("r2", outputs=1, last_seq=2))
        step = StepState("a", "a", "succeeded", 1, outputs={"t": text})  # a line of its own
        store.save_run_snapshot(RunState("r3", steps={"a": step}, order=["a"], last_seq=2))
        assert store.redact(Scrubber([text])) == 1
        records = list(store.log.read())  # checksums verified: rewritten with a new CRC32
        assert [r.seq for r in records] == [1, 2]
        assert records[0].data["outputs"]["t"] == PLACEHOLDER
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            left = conn.execute("SELECT string_agg(line, '') FROM aios_events").fetchone()
        assert text not in left[0]
        assert not store.has_run_snapshot("r1") and store.has_run_snapshot("r2")
        assert not store.has_run_snapshot("r3")
    finally:
        store.close()


def test_the_checked_settings_are_kept_without_a_log_folder(postgres_url: str,
                                                            tmp_path: Path) -> None:
    """Commands read ``aios.yaml`` checked once (``.aios/settings.checked``), as on the JSONL
    store, though a database store creates no ``.aios/`` of its own."""
    (tmp_path / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n"
                                        f'store: {{url: "{postgres_url}"}}\n')
    Workspace(tmp_path).close()
    kept = (tmp_path / ".aios" / "settings.checked").read_text()
    assert postgres_url in kept and not (tmp_path / ".aios" / "log").exists()
