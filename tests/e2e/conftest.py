"""End-to-end tests run the installed ``aiosrun`` console script in a subprocess, as a user
would. Those that take the ``store`` fixture (tests/conftest.py) run once on each store;
the helpers below read what they check from either."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiosrun.runtime.log.eventlog import Record

Runner = Callable[..., subprocess.CompletedProcess[str]]


def _aiosrun_command() -> list[str]:
    script = shutil.which("aiosrun", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "aiosrun.runtime"]


@pytest.fixture
def aiosrun(tmp_path: Path) -> Runner:
    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        merged = {k: v for k, v in os.environ.items() if k != "AIOS_WORKSPACE"}
        merged.update(env or {})
        return subprocess.run([*_aiosrun_command(), *args], cwd=cwd or tmp_path, env=merged,
                              capture_output=True, text=True, input=input, timeout=60)

    return run


# ---- either store: what a test reads beside the CLI -------------------------------------

def store_url(root: Path) -> str | None:
    """The PostgreSQL URL of the workspace's ``aios.yaml``, None on the JSONL store."""
    text = (root / "aios.yaml").read_text()
    return text.split('url: "', 1)[1].split('"', 1)[0] if 'url: "' in text else None


def log_records(root: Path) -> list[Record]:
    """Every record of the workspace's log, verified, from whichever store it names."""
    from aiosrun.runtime.workspace import Workspace

    ws = Workspace(root)
    try:
        return list(ws.log.read())
    finally:
        ws.close()


def log_holds(root: Path, text: str) -> bool:
    """Whether some record of the log contains ``text`` (cheap enough to poll)."""
    url = store_url(root)
    if url is None:
        return any(text in p.read_text(errors="replace")
                   for p in (root / ".aios" / "log").glob("*.jsonl"))
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        try:
            return conn.execute("SELECT 1 FROM aios_events WHERE strpos(line, %s) > 0 "
                                "LIMIT 1", (text,)).fetchone() is not None
        except psycopg.errors.UndefinedTable:
            return False


def journal_entries(root: Path, name: str) -> list[dict[str, Any]]:
    """An adapter's effects ledger (``billing/ledger``): a file of ``.aios/`` on the JSONL
    store, rows of ``aios_journal`` on PostgreSQL."""
    url = store_url(root)
    if url is None:
        path = root / ".aios" / f"{name}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] \
            if path.exists() else []
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        try:
            rows = conn.execute("SELECT entry FROM aios_journal WHERE name = %s ORDER BY n",
                                (name,)).fetchall()
        except psycopg.errors.UndefinedTable:
            return []
    return [json.loads(row[0]) for row in rows]


def once_the_lease_lapses(command: Callable[[], subprocess.CompletedProcess[str]]
                          ) -> subprocess.CompletedProcess[str]:
    """Run ``command`` again while it says the run is another process's: on PostgreSQL a
    killed process's lease row lasts until ``lease_timeout``; a JSONL lock ends with it."""
    for _ in range(100):
        done = command()
        if "being executed by another" not in done.stdout + done.stderr:
            return done
        time.sleep(0.2)
    raise AssertionError("the killed process's lease never lapsed")


def wait_until_leases_lapse(root: Path) -> None:
    """On PostgreSQL, until no lease row is alive (a killed process's lasts until its
    ``lease_timeout``); at once on the JSONL store, whose locks die with their process."""
    url = store_url(root)
    if url is None:
        return
    import psycopg

    deadline = time.monotonic() + 60
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute("SELECT 1 FROM aios_leases WHERE expires_at > now() "
                           "LIMIT 1").fetchone() is not None:
            assert time.monotonic() < deadline, "a lease never lapsed"
            time.sleep(0.1)


def rows_holding(url: str, needles: list[bytes]) -> list[str]:
    """Where a needle sits in the database: ``table.column: needle`` for every text form of
    every column of every table (the schema's own, so a table added later is searched too),
    each value read whole rather than searched by SQL, as a file is read."""
    import psycopg

    found = []
    with psycopg.connect(url, autocommit=True) as conn:
        columns = conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                               "WHERE table_schema = 'public' ORDER BY table_name, "
                               "ordinal_position").fetchall()
        assert {table for table, _ in columns} >= {"aios_events", "aios_snapshots",
                                                   "aios_runs", "aios_journal"}
        for table, column in columns:
            for (value,) in conn.execute(f'SELECT "{column}"::text FROM "{table}"'):
                data = (value or "").encode("utf-8")
                found += [f"{table}.{column}: {n!r}" for n in needles if n in data]
    return found


def serve_is_up(root: Path, seconds: float = 30) -> None:
    """Until a ``serve`` of the workspace is registered (the ``.aios/serve.lock`` it holds on
    the JSONL store, its row of ``aios_workers`` on PostgreSQL)."""
    from aiosrun.runtime.workspace import Workspace

    deadline = time.monotonic() + seconds
    while True:
        if (root / ".aios").is_dir() or store_url(root) is not None:
            ws = Workspace(root)
            try:
                if ws.store.serve_running():
                    return
            finally:
                ws.close()
        assert time.monotonic() < deadline, "serve never came up"
        time.sleep(0.1)
