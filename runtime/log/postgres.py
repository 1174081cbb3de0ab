"""The PostgreSQL store: the log (:mod:`.pglog`) and, as tables, what JSONL keeps in files.

``store: {url: postgresql://USER@HOST:PORT/DB, password: ${{ secrets.NAME }},
lease_timeout: 15s}`` in ``aios.yaml``. Several ``aiosrun serve`` processes, on one machine
or many, then share one state:

- a run's lease is a row of ``aios_leases`` (owner, token, expiry), taken in a transaction
  that reads it ``FOR UPDATE SKIP LOCKED``: a row another worker is taking right now is
  skipped, a live row of another owner refuses, an expired one is taken over. A heartbeat
  thread renews this process's rows every third of the timeout, so a worker killed with -9
  has its runs taken over once the timeout passes;
- each serve registers a row of ``aios_workers`` (renewed the same way), which is how a
  command knows that some serve dispatches events and timers;
- snapshots are rows of ``aios_snapshots`` with the same checksummed text as the files.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets as tokens
import socket
import threading
import urllib.parse
import zlib
from collections.abc import Mapping
from typing import Any

from aiosrun.runtime.log.eventlog import LogError, Record, StoreUnavailable, decode
from aiosrun.runtime.log.pglog import JOURNAL_KEY, PgLog, connect
from aiosrun.runtime.log.projections import (
    RunState,
    WorkspaceState,
    parse_snapshot,
    run_snapshot,
    snapshot_text,
    workspace_snapshot,
)
from aiosrun.runtime.log.scrub import Scrubber
from aiosrun.runtime.log.store import snapshot_key

DEFAULT_LEASE_SECONDS = 15.0
_SECRET_REF = re.compile(r"\$\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")


def public_url(url: str) -> str:
    """The URL without a password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def store_password(settings: Mapping[str, Any], secrets: Mapping[str, str]) -> str | None:
    """The password ``store.password`` names (a secret reference), None without one."""
    reference = settings.get("password")
    if not reference:
        return None
    match = _SECRET_REF.fullmatch(str(reference).strip())
    value = secrets.get(match.group(1)) if match else None
    if not value:
        raise LogError(f"store.password: the secret it names is not set ({reference}; add it "
                       "to the workspace's .env, or name it in secrets.env)")
    return value


class PgTail:
    """The records after ``after_seq``, then each new one (one query per poll)."""

    def __init__(self, store: PostgresStore, after_seq: int) -> None:
        self.store = store
        self.after_seq = after_seq

    def poll(self) -> list[Record]:
        log = self.store.log
        with log.errors():
            rows = log.conn.execute("SELECT seq, line FROM aios_events WHERE seq > %s "
                                    "ORDER BY seq LIMIT 1000", (self.after_seq,)).fetchall()
        out = []
        for seq, line in rows:
            if seq != self.after_seq + 1:
                break  # not yet visible: read next time, never skipped
            out.append(decode(line.encode("utf-8"), log._file, seq))
            self.after_seq = seq
        return out


class PgLease:
    """A run's lease row; see the module's docstring."""

    def __init__(self, store: PostgresStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.token = tokens.token_hex(8)
        self.held = False

    def try_acquire(self) -> bool:
        store = self.store
        conn = store.log.conn
        ttl = store.lease_seconds
        with store.log.errors(), conn.transaction():
            row = conn.execute("SELECT owner, token, expires_at > now() FROM aios_leases "
                               "WHERE run = %s FOR UPDATE SKIP LOCKED",
                               (self.run_id,)).fetchone()
            if row is None:  # no row, or one that another worker holds locked right now
                taken = conn.execute(
                    "INSERT INTO aios_leases (run, owner, token, expires_at) VALUES "
                    "(%s, %s, %s, now() + make_interval(secs => %s)) "
                    "ON CONFLICT (run) DO NOTHING RETURNING run",
                    (self.run_id, store.owner, self.token, ttl)).fetchone()
                self.held = taken is not None
            elif row[2] and row[1] != self.token:
                self.held = False  # alive, held by another worker (or another lease here)
            else:
                conn.execute("UPDATE aios_leases SET owner = %s, token = %s, expires_at = "
                             "now() + make_interval(secs => %s) WHERE run = %s",
                             (store.owner, self.token, ttl, self.run_id))
                self.held = True
        if self.held:
            store.log.fences[self.run_id] = self.token  # appends for the run check it
            store.heartbeat.start()
        return self.held

    def release(self) -> None:
        if self.held:
            if self.store.log.fences.get(self.run_id) == self.token:
                del self.store.log.fences[self.run_id]
            with contextlib.suppress(StoreUnavailable), self.store.log.errors():
                self.store.log.conn.execute("DELETE FROM aios_leases WHERE run = %s AND "
                                            "token = %s", (self.run_id, self.token))
            self.held = False

    def close(self) -> None:
        """A lease never acquired holds nothing."""

    def discard(self) -> None:
        self.release()


class Heartbeat:
    """Renews this process's lease and worker rows every third of the lease timeout, on a
    connection of its own in a daemon thread (a process killed with -9 stops renewing).
    Only the leases it holds: a row whose release the database did not take (it was away)
    lapses, and the run is resumed like a crash's."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.failures = 0

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="aiosrun-heartbeat",
                                           daemon=True)
            self.thread.start()

    def _run(self) -> None:
        store = self.store
        conn = None
        while not self.stop.wait(store.lease_seconds / 3):
            try:
                if conn is None:
                    conn = connect(store.dsn, store.password, store.url)
                held = list(store.log.fences.copy().values())  # not a row left behind
                conn.execute("UPDATE aios_leases SET expires_at = now() + make_interval("
                             "secs => %s) WHERE owner = %s AND token = ANY(%s)",
                             (store.lease_seconds, store.owner, held))
                conn.execute("UPDATE aios_workers SET expires_at = now() + make_interval("
                             "secs => %s) WHERE owner = %s", (store.lease_seconds, store.owner))
            except Exception:  # the database is away: the leases lapse; runs stay resumable
                self.failures += 1
                with contextlib.suppress(Exception):
                    if conn is not None:
                        conn.close()
                conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)


class PgJournal:
    """A journal's rows of ``aios_journal``, held with an advisory lock on a connection of
    its own (tasks of one process exclude each other too; the lock is per session)."""

    def __init__(self, store: PostgresStore, name: str) -> None:
        self.store = store
        self.name = name
        self.conn: Any = None

    def __enter__(self) -> list[dict[str, Any]]:
        import psycopg

        store = self.store
        crc = zlib.crc32(self.name.encode("utf-8"))
        self.key = crc - 2**32 if crc >= 2**31 else crc
        while True:
            reused = bool(store._idle)  # an idle connection may have died with its server
            self.conn = store._idle.pop() if reused else connect(store.dsn, store.password,
                                                                 store.url)
            try:
                with store.log.errors():
                    self.conn.execute("SELECT pg_advisory_lock(%s, %s)",
                                      (JOURNAL_KEY, self.key))
                    rows = self.conn.execute("SELECT entry FROM aios_journal WHERE name = %s "
                                             "ORDER BY n", (self.name,)).fetchall()
                return [json.loads(row[0]) for row in rows]
            except StoreUnavailable:
                with contextlib.suppress(psycopg.Error):
                    self.conn.close()
                if not reused:
                    raise

    def append(self, entry: dict[str, Any]) -> None:
        from aiosrun.adapters.base import TransientError

        try:
            with self.store.log.errors():
                self.conn.execute("INSERT INTO aios_journal (name, entry) VALUES (%s, %s)",
                                  (self.name, json.dumps(entry, ensure_ascii=False)))
        except StoreUnavailable as exc:
            raise TransientError(f"{exc}") from None

    def __exit__(self, *exc: object) -> None:
        conn, self.conn = self.conn, None
        try:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (JOURNAL_KEY, self.key))
        except Exception:  # a broken connection drops its locks with it
            with contextlib.suppress(Exception):
                conn.close()
            return
        self.store._idle.append(conn)


class WorkerRow:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def release(self) -> None:
        with contextlib.suppress(StoreUnavailable), self.store.log.errors():
            self.store.log.conn.execute("DELETE FROM aios_workers WHERE owner = %s",
                                        (self.store.owner,))


class PostgresStore:
    """One workspace's state in one PostgreSQL database."""

    shared = True

    def __init__(self, dsn: str, password: str | None, *,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.dsn = dsn
        self.password = password
        self.url = public_url(dsn)
        self.lease_seconds = lease_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{tokens.token_hex(4)}"
        self.log = PgLog(connect(dsn, password, self.url), self.url, password,
                         reconnect=lambda: connect(dsn, password, self.url)).open()
        self.heartbeat = Heartbeat(self)
        self._idle: list[Any] = []  # journal connections, reused

    def journal(self, name: str) -> PgJournal:
        return PgJournal(self, name)

    async def durable(self) -> None:
        """Every committed append is durable already."""

    def tail(self, after_seq: int = 0) -> PgTail:
        return PgTail(self, after_seq)

    def lease(self, run_id: str) -> PgLease:
        return PgLease(self, run_id)

    def register_serve(self) -> WorkerRow:
        """Several serves share a PostgreSQL store: each one registers a row."""
        with self.log.errors():
            self.log.conn.execute(
                "INSERT INTO aios_workers (owner, host, pid, expires_at) VALUES (%s, %s, %s, "
                "now() + make_interval(secs => %s)) ON CONFLICT (owner) DO UPDATE SET "
                "expires_at = excluded.expires_at",
                (self.owner, socket.gethostname(), os.getpid(), self.lease_seconds))
        self.heartbeat.start()
        return WorkerRow(self)

    def serve_running(self) -> bool:
        with self.log.errors():
            row = self.log.conn.execute("SELECT 1 FROM aios_workers WHERE expires_at > now() "
                                        "LIMIT 1").fetchone()
        return row is not None

    # ---- snapshots --------------------------------------------------------------------

    def _load(self, key: str) -> Any:
        with self.log.errors():
            row = self.log.conn.execute("SELECT body FROM aios_snapshots WHERE key = %s",
                                        (key,)).fetchone()
        return None if row is None else parse_snapshot(row[0], f"{self.url}#snapshots/{key}")

    def _save(self, key: str, state: RunState | WorkspaceState) -> None:
        """A snapshot only saves replay time: one that cannot be written is left out."""
        with contextlib.suppress(StoreUnavailable), self.log.errors():
            self.log.conn.execute(
                "INSERT INTO aios_snapshots (key, last_seq, body) VALUES (%s, %s, %s) ON "
                "CONFLICT (key) DO UPDATE SET last_seq = excluded.last_seq, body = "
                "excluded.body WHERE aios_snapshots.last_seq <= excluded.last_seq",
                (key, state.last_seq, snapshot_text(state)))

    def load_run_snapshot(self, run_id: str) -> RunState | None:
        return run_snapshot(self._load(snapshot_key(run_id)))

    def save_run_snapshot(self, state: RunState) -> None:
        self._save(snapshot_key(state.id), state)

    def has_run_snapshot(self, run_id: str) -> bool:
        with self.log.errors():
            return self.log.conn.execute("SELECT 1 FROM aios_snapshots WHERE key = %s",
                                         (snapshot_key(run_id),)).fetchone() is not None

    def workspace_sections(self) -> None:
        """No partial read here: the read commands load the whole projection."""
        return None

    def load_workspace_snapshot(self) -> WorkspaceState | None:
        return workspace_snapshot(self._load(snapshot_key(None)))

    def save_workspace_snapshot(self, state: WorkspaceState) -> None:
        self._save(snapshot_key(None), state)

    def clear_snapshots(self) -> None:
        with self.log.errors():
            self.log.conn.execute("DELETE FROM aios_snapshots")

    def check_covered(self, snapshot: RunState | WorkspaceState | None,
                      run_id: str | None = None) -> None:
        if snapshot is None:
            return
        self.log.refresh()
        if snapshot.last_seq > self.log.last_seq:
            raise LogError(f"{self.url}#snapshots/{snapshot_key(run_id)}: this snapshot "
                           f"covers the log up to seq {snapshot.last_seq}, but the log ends "
                           f"at seq {self.log.last_seq}: records were removed from "
                           "aios_events; restore the database from a backup")

    def check_index(self) -> None:
        self.log.check_index()

    def redact(self, scrubber: Scrubber) -> int:
        """Rewrite the rows holding a copy of a forgotten text (same seq and time, a new
        CRC32) and drop the snapshots that hold one, in one transaction under the
        appenders' lock, on a connection of its own."""
        import dataclasses

        from aiosrun.runtime.log.eventlog import encode
        from aiosrun.runtime.log.pglog import LOCK_KEY

        if not scrubber:
            return 0
        conn = connect(self.dsn, self.password, self.url)
        rewritten = 0
        try:
            with self.log.errors(), conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                for seq, line in conn.execute("SELECT seq, line FROM aios_events ORDER BY "
                                              "seq").fetchall():
                    if not scrubber.may_hold(line.encode("utf-8")):
                        continue
                    record = decode(line.encode("utf-8"), self.log._file, seq)
                    scrubbed = scrubber.data(record.data, record=True)
                    if scrubbed != record.data:
                        fresh = encode(dataclasses.replace(record, data=scrubbed))
                        conn.execute("UPDATE aios_events SET line = %s WHERE seq = %s",
                                     (fresh.decode("utf-8").rstrip("\n"), seq))
                        rewritten += 1
                for key, body in conn.execute("SELECT key, body FROM aios_snapshots"
                                              ).fetchall():
                    if scrubber.may_hold(body.encode("utf-8")) and _snapshot_holds(
                            body, scrubber):
                        conn.execute("DELETE FROM aios_snapshots WHERE key = %s", (key,))
        finally:
            conn.close()
        return rewritten

    def close(self) -> None:
        self.heartbeat.close()
        for conn in self._idle:
            with contextlib.suppress(Exception):
                conn.close()
        self.log.close()


def _snapshot_holds(body: str, scrubber: Scrubber) -> bool:
    """Whether a snapshot holds a copy: each line after its checksum is JSON (the state, or a
    run's head and then one line per step). One that does not parse is taken to hold one:
    snapshots are derived, so deleting it only costs a replay."""
    try:
        return any(scrubber.holds(json.loads(line))
                   for line in body.partition("\n")[2].split("\n"))
    except ValueError:
        return True


def open_postgres(settings: Mapping[str, Any], secrets: Mapping[str, str]) -> PostgresStore:
    """The store of ``aios.yaml``'s ``store:`` (its URL, password reference, lease timeout)."""
    from aiosrun.dsl.durations import parse_duration

    timeout = parse_duration(str(settings.get("lease_timeout", "15s")))
    seconds = timeout / 1000 if timeout else DEFAULT_LEASE_SECONDS
    return PostgresStore(str(settings["url"]), store_password(settings, secrets),
                         lease_seconds=seconds)
