"""Two ``serve --http`` workers in two folders on one PostgreSQL store: a webhook delivered to
one and redelivered to the other is recorded once and starts its playbook once, and either
worker's API sees the run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import psycopg

from .conftest import TOKEN, WORKSPACE, Server, free_port, make_workspace
from .test_webhooks import standard


def test_a_webhook_to_either_worker_lands_once_in_the_shared_log(tmp_path: Path,
                                                               postgres_url: str) -> None:
    shared = WORKSPACE + f'store: {{url: "{postgres_url}"}}\n'
    first = Server(make_workspace(tmp_path / "a", shared), free_port()).start()
    try:
        second = Server(make_workspace(tmp_path / "b", shared), free_port()).start()
        try:
            body = json.dumps({"email": "shared@example.com"}).encode()
            headers = standard(body, "msg_shared_1")
            one = httpx.post(f"{first.url}/hooks/forms", content=body, headers=headers)
            assert one.status_code == 202, one.text
            again = httpx.post(f"{second.url}/hooks/forms", content=body, headers=headers)
            assert again.status_code == 200 and again.json()["duplicate"] is True
            assert again.json()["seq"] == one.json()["seq"]
            auth = {"Authorization": f"Bearer {TOKEN}"}
            deadline = time.monotonic() + 60
            while True:
                runs = [r for r in httpx.get(f"{second.url}/api/v1/runs", headers=auth).json()
                        if r["playbook"] == "on-lead"]
                if runs and runs[0]["status"] == "succeeded":
                    break
                assert time.monotonic() < deadline, runs
                time.sleep(0.1)
            assert len(runs) == 1
        finally:
            second.stop()
    finally:
        first.stop()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        emitted = conn.execute("SELECT count(*) FROM aios_events WHERE type = "
                               "'EventEmitted'").fetchone()
        started = conn.execute("SELECT count(*) FROM aios_events WHERE type = "
                               "'RunStarted'").fetchone()
        notes = conn.execute("SELECT count(*) FROM aios_journal WHERE name = 'effects/files' "
                             "AND entry LIKE '%\"done\"%'").fetchone()
    assert emitted == (1,) and started == (1,) and notes == (2,)  # two steps, once each
