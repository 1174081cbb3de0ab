"""DESIGN section 15: several ``aiosrun serve`` workers in separate workspace folders share one
PostgreSQL state. 100 triggered runs, one worker killed with SIGKILL midway: every run
succeeds, each invoice is created once (the billing ledger is a journal in the store), no
completed step ran twice, and seq has no gap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import psycopg
from aiosrun.runtime.workspace import Workspace

from .conftest import _aiosrun_command
from .test_serve import CRON

PLAYBOOK = """\
apiVersion: aiosrun/v1
kind: Playbook
name: bill-order
on: {event: order.placed}
inputs:
  order: {type: string}
steps:
  - id: nap
    uses: debug.sleep
    with: {seconds: 0.1}
  - id: bill
    uses: billing.create_invoice
    with: {customer: "${{ inputs.order }}", amount: 10}
  - id: after
    uses: debug.sleep
    with: {seconds: 0.1}
"""

EMIT = """\
import sys
import trio
from aiosrun.runtime import Engine

async def main() -> None:
    async with Engine.open(sys.argv[1]) as engine:
        for n in range(int(sys.argv[2])):
            await engine.emit("order.placed", {"order": f"o{n}"}, id=f"delivery-{n}")

trio.run(main)
"""
RUNS = 100
LEASE = 2.0


def workspace(root: Path, url: str) -> Path:
    (root / "playbooks").mkdir(parents=True)
    (root / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n"
                                    f'store: {{url: "{url}", lease_timeout: {LEASE:g}s}}\n')
    (root / "playbooks" / "bill-order.yaml").write_text(PLAYBOOK)
    return root


def count(url: str, query: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def serve(root: Path, name: str) -> subprocess.Popen[str]:
    log = open(root / f"{name}.log", "w")  # noqa: SIM115 (the worker's stderr, read after)
    return subprocess.Popen([*_aiosrun_command(), "--workspace", str(root), "serve",
                             "--interval", "0.2"], stdout=log, stderr=log, text=True)


def test_two_workers_share_the_state_and_one_is_killed_midway(postgres_url: str,
                                                              tmp_path: Path) -> None:
    first = workspace(tmp_path / "machine-a", postgres_url)
    second = workspace(tmp_path / "machine-b", postgres_url)
    applied = subprocess.run([*_aiosrun_command(), "--workspace", str(first), "apply"],
                             capture_output=True, text=True, timeout=120)
    assert applied.returncode == 0, applied.stderr
    workers = [serve(first, "a"), serve(second, "b")]
    try:
        deadline = time.monotonic() + 60
        while count(postgres_url, "SELECT count(*) FROM aios_workers") < 2:
            assert time.monotonic() < deadline, "the workers did not register"
            time.sleep(0.1)
        script = tmp_path / "emit.py"
        script.write_text(textwrap.dedent(EMIT))
        emitted = subprocess.run([sys.executable, str(script), str(first), str(RUNS)],
                                 capture_output=True, text=True, timeout=180)
        assert emitted.returncode == 0, emitted.stderr
        succeeded = "SELECT count(*) FROM aios_events WHERE type = 'RunSucceeded'"
        deadline = time.monotonic() + 180
        while count(postgres_url, succeeded) < RUNS // 3:
            assert time.monotonic() < deadline, "the workers made no progress"
            time.sleep(0.05)
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait(timeout=30)
        killed_at = count(postgres_url, succeeded)
        deadline = time.monotonic() + 240
        while count(postgres_url, succeeded) < RUNS:
            assert time.monotonic() < deadline, (
                f"{count(postgres_url, succeeded)} of {RUNS} runs succeeded; worker b said: "
                + (second / "b.log").read_text()[-2000:])
            time.sleep(0.1)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
    assert killed_at < RUNS  # the kill landed while runs were still to do
    ws = Workspace(second)
    try:
        records = list(ws.log.read())
    finally:
        ws.close()
    assert [r.seq for r in records] == list(range(1, len(records) + 1))  # no gap
    started = [r for r in records if r.type == "RunStarted"]
    assert len(started) == RUNS and len({r.run for r in started}) == RUNS
    ends = Counter(r.type for r in records if r.type.startswith("Run") and r.type != "RunStarted")
    assert ends == {"RunSucceeded": RUNS}
    steps = Counter((r.run, r.data["path"]) for r in records if r.type == "StepSucceeded")
    assert len(steps) == 3 * RUNS and set(steps.values()) == {1}  # no step completed twice
    attempts = Counter((r.run, r.data["path"]) for r in records if r.type == "StepStarted")
    assert max(attempts.values()) > 1  # runs the killed worker had in flight were taken over
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        entries = [row[0] for row in conn.execute(
            "SELECT entry FROM aios_journal WHERE name = 'billing/ledger'").fetchall()]
    customers = Counter(json.loads(e)["record"]["customer"] for e in entries)
    assert customers == Counter({f"o{n}": 1 for n in range(RUNS)})  # each invoice once
    assert not (first / ".aios" / "billing").exists()  # the ledger is in the store


def test_a_schedule_fires_once_across_two_workers(postgres_url: str, tmp_path: Path) -> None:
    import datetime as dt

    import trio
    from aiosrun.dsl.ir_codec import encode
    from aiosrun.dsl.loader import load_text
    from aiosrun.dsl.validate import validate_document
    from aiosrun.runtime.coordinator.scheduler import Server
    from aiosrun.runtime.log.eventlog import NewEvent

    roots = [workspace(tmp_path / name, postgres_url) for name in ("a", "b")]
    spaces = [Workspace(root) for root in roots]
    playbook = validate_document(load_text(CRON, "minutely.yaml"))
    spaces[0].log.append(NewEvent("PlaybookApplied", {
        "name": playbook.name, "digest": playbook.digest, "source": "minutely.yaml",
        "ir": encode(playbook)}))
    start = dt.datetime(2026, 11, 30, 8, 0, 30, tzinfo=dt.UTC)
    servers = [Server(ws, lambda line: None, interval=90) for ws in spaces]

    async def both() -> None:
        async with trio.open_nursery() as nursery:
            for server in servers:
                server.checked_until = start
                server.nursery = nursery
            for second in (80, 85):  # 08:01 falls between two checks of each worker
                for server in servers:
                    await server.schedules(start + dt.timedelta(seconds=second))

    try:
        trio.run(both)
        records = list(spaces[0].log.read())
    finally:
        for ws in spaces:
            ws.close()
    assert [r.run for r in records if r.type == "RunStarted"] == ["cron-minutely-20261130T0801Z"]
    ticks = [line for root in roots if (root / "ticks.txt").exists()
             for line in (root / "ticks.txt").read_text().split()]
    assert ticks == ["2026-11-30T08:01:00.000000Z"]
