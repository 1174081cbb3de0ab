"""``aiosrun migrate --to postgresql://...``: a JSONL workspace's state copied to PostgreSQL.

Everything the JSONL store keeps moves: the records (each line as it was, seq and time
included), the run index (rebuilt from them in the database), the snapshots, and the
journals (the effects ledgers, the billing ledger). The copy is then read back and compared
record by record, so a migration that reports success holds exactly the log it came from.
A database that already holds records is refused: nothing is merged or overwritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosrun.runtime.log.eventlog import LogError, encode
from aiosrun.runtime.log.jsonl import JsonlStore
from aiosrun.runtime.log.postgres import PostgresStore
from aiosrun.runtime.log.projections import parse_snapshot, snapshot_text

BATCH = 5000


@dataclass(frozen=True)
class Migration:
    records: int
    runs: int
    snapshots: int
    journal_entries: int
    url: str


def migrate(source: JsonlStore, url: str, password: str | None = None) -> Migration:
    """Copy ``source`` into the empty database at ``url`` and verify the copy."""
    target = PostgresStore(url, password)
    try:
        log = target.log
        if log.last_seq:
            raise LogError(f"{target.url}: the database already holds {log.last_seq} "
                           "records; migrate into an empty database")
        copied = _copy_records(source, target)
        runs = target.log.rebuild_index()
        snapshots = _copy_snapshots(source, target)
        entries = _copy_journals(source, target)
        _verify(source, target, copied)
        return Migration(copied, runs, snapshots, entries, target.url)
    finally:
        target.close()


def _copy_records(source: JsonlStore, target: PostgresStore) -> int:
    conn = target.log.conn
    copied = 0
    with target.log.errors(), conn.transaction(), conn.cursor() as cursor:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x61696F73,))
        with cursor.copy("COPY aios_events (seq, run, type, event_id, line) FROM STDIN") as copy:
            for record in source.log.read():
                event_id = record.data.get("id") if record.type == "EventEmitted" else None
                copy.write_row((record.seq, record.run, record.type,
                                None if event_id is None else str(event_id),
                                encode(record).decode("utf-8").rstrip("\n")))
                copied += 1
    target.log.refresh()
    return copied


def _copy_snapshots(source: JsonlStore, target: PostgresStore) -> int:
    count = 0
    folder = source.snapshots
    paths = [folder / "workspace.json", *sorted((folder / "runs").glob("*.json"))]
    with target.log.errors():
        for path in paths:
            if not path.is_file():
                continue
            text = path.read_text("utf-8")
            raw = parse_snapshot(text, path)  # an edited snapshot stops the migration
            key = "workspace" if path.name == "workspace.json" and path.parent == folder \
                else f"runs/{path.stem}"
            target.log.conn.execute(
                "INSERT INTO aios_snapshots (key, last_seq, body) VALUES (%s, %s, %s)",
                (key, int(raw.get("last_seq", 0)), text))
            count += 1
        opened = source.workspace_sections()  # the workspace's, kept in blocks here
        if opened is not None:
            with opened:
                state = opened.state()
            target.log.conn.execute(
                "INSERT INTO aios_snapshots (key, last_seq, body) VALUES (%s, %s, %s) ON "
                "CONFLICT (key) DO UPDATE SET last_seq = excluded.last_seq, body = "
                "excluded.body WHERE aios_snapshots.last_seq <= excluded.last_seq",
                ("workspace", state.last_seq, snapshot_text(state)))
            count += 1
    return count


def journal_files(state_dir: Path) -> dict[str, Path]:
    """The journals of a JSONL store: ``NAME.jsonl`` under ``effects/`` and ``billing/``."""
    found = {}
    for folder in ("effects", "billing"):
        for path in sorted((state_dir / folder).glob("*.jsonl")):
            found[f"{folder}/{path.stem}"] = path
    return found


def _copy_journals(source: JsonlStore, target: PostgresStore) -> int:
    count = 0
    for name in journal_files(source.state_dir):
        journal = source.journal(name)
        entries: list[dict[str, Any]] = journal.__enter__()
        try:
            with target.log.errors(), target.log.conn.transaction():
                for entry in entries:
                    target.log.conn.execute("INSERT INTO aios_journal (name, entry) VALUES "
                                            "(%s, %s)", (name, json.dumps(entry,
                                                                          ensure_ascii=False)))
                    count += 1
        finally:
            journal.__exit__()
    return count


def _verify(source: JsonlStore, target: PostgresStore, copied: int) -> None:
    """The copy, read back through the PostgreSQL store's own checks, equals the source."""
    theirs = target.log.read()
    for number, mine in enumerate(source.log.read(), start=1):
        other = next(theirs, None)
        if other != mine:
            raise LogError(f"{target.url}: the copy differs from the log at seq {mine.seq}; "
                           "drop the database and migrate again")
        if number == copied:
            break
    if next(theirs, None) is not None or target.log.last_seq != copied:
        raise LogError(f"{target.url}: the copy holds more records than the log")
    target.log.check_index()
