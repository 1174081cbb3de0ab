"""The event log as a PostgreSQL table (DESIGN section 15), for several workers on one state.

A record is one row of ``aios_events``: its ``seq`` (the primary key), its run, its type, its
event id (unique: an event recorded twice is impossible even past the guards), and the line
exactly as the JSONL log encodes it, CRC32 included, so every read verifies the checksum and
a copied log (``aiosrun migrate``) is byte for byte the same records.

An append is numbered from the newest ``seq`` this process has seen. Without a guard it is
one statement, and the primary key refuses it whole when another appender took that seq
meanwhile (it is then numbered again), so seq N+1 is only ever written by a process that saw
N committed. A guarded append (a new run, an open gate, an unseen event id) is one
transaction under a transaction-level advisory lock: the appender reads the newest seq, asks
the guard and inserts. Either way the batch files its new runs in ``aios_runs`` (the run
index) in the same statement, appenders never leave a gap, and every reader still checks
that the seqs it reads are contiguous (docs/decisions.md says why not every append takes the
lock).

psycopg 3's async API is asyncio-only, so this uses one synchronous connection, called from
the thread that owns the Workspace (as the JSONL log makes its file calls); a statement on a
local server takes a fraction of a millisecond.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from aiosrun.runtime.log.eventlog import (
    FsyncPolicy,
    LeaseLost,
    LogCorrupted,
    LogError,
    LogLocked,
    NewEvent,
    Record,
    StoreUnavailable,
    decode,
    encode,
    format_ts,
    utc_now,
)

LOCK_KEY = 0x61696F73  # "aios": the appenders' advisory lock
SCHEMA_KEY = 0x61696F74  # creating the tables, once
JOURNAL_KEY = 0x61696F75  # with a journal name's CRC32: one holder per journal
PAGE = 2000  # rows read per query
MAX_ATTEMPTS = 1000  # appends that lose the race to other appenders, then give up
SCHEMA = """
CREATE TABLE IF NOT EXISTS aios_events (
    seq bigint PRIMARY KEY,
    run text,
    type text NOT NULL,
    event_id text,
    line text NOT NULL
);
CREATE INDEX IF NOT EXISTS aios_events_run ON aios_events (run, seq) WHERE run IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS aios_events_event_id ON aios_events (event_id)
    WHERE event_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS aios_runs (
    run text PRIMARY KEY,
    first_seq bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS aios_snapshots (
    key text PRIMARY KEY,
    last_seq bigint NOT NULL,
    body text NOT NULL
);
CREATE TABLE IF NOT EXISTS aios_leases (
    run text PRIMARY KEY,
    owner text NOT NULL,
    token text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS aios_workers (
    owner text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS aios_journal (
    name text NOT NULL,
    n bigserial,
    entry text NOT NULL,
    PRIMARY KEY (name, n)
);
"""


class SeqTaken(LogError):
    """Another process appended first: the batch is numbered again (nothing was kept)."""


def connect(url: str, password: str | None, where: str) -> Any:
    """An autocommit connection (statements outside an explicit transaction commit alone)."""
    try:
        import psycopg
    except ImportError:
        raise LogError("store.url names PostgreSQL, which needs psycopg: "
                       "pip install 'aiosrun[postgresql]'") from None
    try:
        extra: dict[str, Any] = {"password": password} if password else {}
        return psycopg.connect(url, autocommit=True, connect_timeout=10,
                               options="-c lock_timeout=30s", **extra)
    except psycopg.Error as exc:
        raise StoreUnavailable(f"{where}: cannot connect to PostgreSQL "
                               f"({_reason(exc, password)})") from None


def _reason(exc: BaseException, password: str | None) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.replace(password, "***") if password else text


def create_schema(conn: Any) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_KEY,))
        conn.execute(SCHEMA)


class PgLog:
    """The log of one PostgreSQL database; one instance per process, like ``EventLog``."""

    fsync_policy: FsyncPolicy = "always"  # a commit is durable when it returns
    read_only = False

    def __init__(self, conn: Any, where: str, password: str | None = None,
                 now: Callable[[], dt.datetime] = utc_now,
                 reconnect: Callable[[], Any] | None = None) -> None:
        self._conn = conn
        self.reconnect = reconnect
        self.where = where  # the URL without a password, for messages
        self.password = password
        self.now = now
        self.last_seq = 0
        self.repaired: str | None = None
        self.index_problem: LogCorrupted | None = None
        self.fsync_hook: Callable[[], None] | None = None
        self._depth = 0
        self._known: set[str] = set()  # runs known to have records (they never lose them)
        self.fences: dict[str, str] = {}  # run -> the token of this process's lease on it
        self._file = Path(f"{where}#aios_events")  # how a corrupt row is named

    @property
    def conn(self) -> Any:
        """The connection; a new one (``reconnect``) once the old one broke because the
        server went away, so a long-lived ``serve`` carries on when the database is back.
        Never inside :meth:`transaction`: its statements stay on the connection that holds
        the appenders' lock, and fail with it."""
        if self._conn.closed and self.reconnect is not None and not self._depth:
            self._conn = self.reconnect()
        return self._conn

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """A driver error becomes a one-line :class:`StoreUnavailable` (never a password)."""
        import psycopg

        try:
            yield
        except psycopg.errors.LockNotAvailable:
            raise LogLocked(f"{self.where}: another aiosrun process has held the event log "
                            "for over 30 s; is one stuck?") from None
        except psycopg.Error as exc:
            raise StoreUnavailable(f"{self.where}: PostgreSQL refused "
                                   f"({_reason(exc, self.password)}); nothing was recorded"
                                   ) from None

    def open(self) -> PgLog:
        with self.errors():
            create_schema(self.conn)
        self.refresh()
        return self

    # ---- appending --------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            conn = self.conn
            self._depth = 1  # from here on, one connection: the lock's
            try:
                with self.errors(), conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                    self._read_last_seq()
                    yield
            finally:
                self._depth = 0
        except BaseException:  # rolled back: what this process appended in it is gone, so
            with contextlib.suppress(Exception):  # numbering from it would leave a gap
                self._read_last_seq()
            raise

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._locked()

    def append(self, event: NewEvent, *, durable: bool = True) -> Record:
        return self.append_many([event], durable=durable)[0]

    def append_many(self, events: Sequence[NewEvent],
                    guard: Callable[[], bool] | None = None, *,
                    durable: bool = True) -> list[Record]:
        """One batch, numbered from the newest seq this process has seen. Without a guard it
        is one statement (one round trip): if another process appended meanwhile, the first
        seq is taken, the primary key refuses the whole batch, and it is numbered again.
        With a guard, the advisory lock serializes the guarded appends, and the guard is
        asked once every committed record is seen. Every commit is durable (``durable`` is
        accepted for the interface)."""
        if not events:
            return []
        for attempt in range(MAX_ATTEMPTS):
            try:
                if guard is None and not self._depth:
                    return self._insert(events)
                with self._locked():
                    if guard is not None and not guard():
                        return []
                    return self._insert(events)
            except SeqTaken:
                if self._depth:
                    raise  # inside the caller's transaction(): it decides again
                self.refresh()
                if attempt > 10:
                    time.sleep(0.001 * min(attempt, 50))
        raise LogLocked(f"{self.where}: {MAX_ATTEMPTS} attempts to append lost to other "
                        "appenders; is one looping?")

    def _insert(self, events: Sequence[NewEvent]) -> list[Record]:
        """Insert the batch in one statement. A record of a run whose lease this process
        holds is fenced: the statement inserts only while the lease row still carries this
        process's token (read ``FOR SHARE``, so a takeover waits for it or it sees the
        takeover), which a worker that stalled past its lease cannot pass."""
        import psycopg

        ts = format_ts(self.now())
        records = []
        args: list[Any] = []
        for offset, event in enumerate(events, start=1):
            record = Record(self.last_seq + offset, ts, event.type, dict(event.data),
                            event.run, event.cause)
            records.append(record)
            event_id = record.data.get("id") if record.type == "EventEmitted" else None
            args += [record.seq, record.run, record.type,
                     None if event_id is None else str(event_id),
                     encode(record).decode("utf-8").rstrip("\n")]
        fenced = sorted({r.run for r in records if r.run is not None and r.run in self.fences})
        if fenced:
            values = ", ".join(["(%s::bigint, %s::text, %s::text, %s::text, %s::text)"]
                               * len(records))
            held = ", ".join(["(%s, %s)"] * len(fenced))
            query = (f"WITH held AS (SELECT run FROM aios_leases WHERE (run, token) IN "
                     f"({held}) FOR SHARE), e AS (INSERT INTO aios_events (seq, run, type, "
                     f"event_id, line) SELECT * FROM (VALUES {values}) AS v WHERE (SELECT "
                     f"count(*) FROM held) = {len(fenced)} RETURNING seq, run), r AS (INSERT "
                     "INTO aios_runs (run, first_seq) SELECT run, min(seq) FROM e WHERE run "
                     "IS NOT NULL GROUP BY run ON CONFLICT (run) DO NOTHING) "
                     "SELECT count(*) FROM e")
            args = [x for run in fenced for x in (run, self.fences[run])] + args
        else:
            values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(records))
            query = (f"WITH e AS (INSERT INTO aios_events (seq, run, type, event_id, line) "
                     f"VALUES {values} RETURNING seq, run) INSERT INTO aios_runs (run, "
                     "first_seq) SELECT run, min(seq) FROM e WHERE run IS NOT NULL GROUP BY "
                     "run ON CONFLICT (run) DO NOTHING")
        with self.errors():
            try:
                cursor = self.conn.execute(query, args)
            except psycopg.errors.UniqueViolation as exc:
                if exc.diag.constraint_name == "aios_events_pkey":
                    raise SeqTaken(f"{self.where}: seq {records[0].seq} was taken by another "
                                   "appender meanwhile") from None
                raise
            inserted = cursor.fetchone()[0] if fenced else len(records)
        if not inserted:
            raise LeaseLost(
                f"run {', '.join(fenced)}: another worker has taken this run over (this worker "
                "left its lease unrenewed for longer than lease_timeout: it was stalled, paused "
                "or cut off from the database); nothing was recorded, and this worker gives "
                "the run up to the one that holds it now")
        self.last_seq = records[-1].seq
        self._known.update(r.run for r in records if r.run is not None)
        return records

    def refresh(self) -> None:
        with self.errors():
            self._read_last_seq()

    def _read_last_seq(self) -> None:
        row = self.conn.execute("SELECT coalesce(max(seq), 0) FROM aios_events").fetchone()
        self.last_seq = int(row[0])

    def sync(self) -> None:
        """Nothing to do: every committed append is already durable."""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    # ---- reading ------------------------------------------------------------------------

    def _rows(self, query: str, args: tuple[Any, ...], from_seq: int, *,
              contiguous: bool, skim: bool = False) -> Iterator[Record]:
        """Rows page by page (a new query per page, so the caller may append between
        them), each verified: checksum, seq column, and (for the whole log) contiguity."""
        after = from_seq - 1
        expected = from_seq
        while True:
            with self.errors():
                rows = self.conn.execute(query, (*args, after, PAGE)).fetchall()
            for seq, line in rows:
                record = decode(line.encode("utf-8"), self._file, seq, skim=skim)
                if record.seq != seq or (contiguous and seq != expected):
                    raise LogCorrupted(self._file, seq,
                                       f"seq {seq} where {expected} was due: records are "
                                       "missing or out of place")
                expected = seq + 1
                after = seq
                self.last_seq = max(self.last_seq, seq)
                yield record
            if len(rows) < PAGE:
                return

    def read(self, from_seq: int = 1, *, skim: bool = False) -> Iterator[Record]:
        first = max(from_seq, 1)
        return self._rows("SELECT seq, line FROM aios_events WHERE seq > %s ORDER BY seq "
                          "LIMIT %s", (), first, contiguous=True, skim=skim)

    def read_run(self, run: str, from_seq: int = 1,
                 until_seq: int | None = None) -> Iterator[Record]:
        last = until_seq if until_seq is not None else math.inf
        return (record for record in itertools.takewhile(lambda r: r.seq <= last, self._rows(
            "SELECT seq, line FROM aios_events WHERE run = %s AND seq > %s ORDER BY seq "
            "LIMIT %s", (run,), max(from_seq, 1), contiguous=False)) if record.run == run)

    def runs(self) -> list[str]:
        with self.errors():
            rows = self.conn.execute("SELECT run FROM aios_runs ORDER BY first_seq").fetchall()
        return [row[0] for row in rows]

    def has_run(self, run: str) -> bool:
        if run in self._known:
            return True
        with self.errors():
            found = self.conn.execute("SELECT 1 FROM aios_runs WHERE run = %s",
                                      (run,)).fetchone() is not None
        if found:
            self._known.add(run)
        return found

    def rebuild_index(self) -> int:
        """Refill ``aios_runs`` from the records."""
        with self._locked(), self.errors():
            self.conn.execute("DELETE FROM aios_runs")
            self.conn.execute("INSERT INTO aios_runs (run, first_seq) SELECT run, min(seq) "
                              "FROM aios_events WHERE run IS NOT NULL GROUP BY run")
            row = self.conn.execute("SELECT count(*) FROM aios_runs").fetchone()
        return int(row[0])

    def check_index(self) -> None:
        """``doctor``: the run index names exactly the runs the records have."""
        with self.errors():
            row = self.conn.execute(
                "SELECT count(*) FROM (SELECT run, min(seq) AS first_seq FROM aios_events "
                "WHERE run IS NOT NULL GROUP BY run) AS truth FULL JOIN aios_runs USING "
                "(run, first_seq) WHERE truth.run IS NULL OR aios_runs.run IS NULL"
            ).fetchone()
        if int(row[0]):
            raise LogCorrupted(Path(f"{self.where}#aios_runs"), 1,
                               f"{row[0]} run index rows disagree with the records; the index "
                               "is derived from the log: `aiosrun doctor --rebuild` rewrites it")
