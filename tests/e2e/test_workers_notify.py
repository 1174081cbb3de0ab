"""DESIGN sections 11 and 15: with two ``serve`` workers on one PostgreSQL store, each with
its own notification cursor, a notification is sent by one of them and recorded once. A
worker SIGKILLed between sending and recording has its claim taken over: the other sends it
again with the same delivery id (at least once, recorded once: docs/decisions.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.receivers import HttpReceiver, http_receiver, wait_for

from .test_workers import count, serve
from .test_workers_fencing import aiosrun

GATED = """\
apiVersion: aiosrun/v1
kind: Playbook
name: gated
steps:
  - id: review
    gate: {message: "Ship order?"}
"""
SENT = "SELECT count(*) FROM aios_events WHERE type = 'NotificationSent'"


def workspace(root: Path, url: str, port: int) -> Path:
    (root / "playbooks").mkdir(parents=True)
    (root / "aios.yaml").write_text(
        "apiVersion: aiosrun/v1\nkind: Workspace\n"
        f'store: {{url: "{url}", lease_timeout: 2s}}\n'
        f'adapters: {{http: {{allow_hosts: ["127.0.0.1:{port}"]}}}}\n'
        f'notify:\n  - webhook: "http://127.0.0.1:{port}/hook"\n    on: [gate]\n')
    (root / "playbooks" / "gated.yaml").write_text(GATED)
    return root


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as hook:
        yield hook


def cursor(root: Path) -> int:
    """How far a worker's notifier has settled the log (0 before its first round)."""
    try:
        return int(json.loads((root / ".aios" / "notify.cursor").read_text())["seq"])
    except (OSError, ValueError, KeyError):
        return 0


def start_workers(roots: list[Path], url: str) -> list[subprocess.Popen[str]]:
    aiosrun(roots[0], "apply")
    workers = [serve(root, name) for root, name in zip(roots, "ab", strict=True)]
    wait_for(lambda: count(url, "SELECT count(*) FROM aios_workers") == 2, 60,
             "both workers to register")
    wait_for(lambda: all(cursor(root) > 0 for root in roots), 60, "both notifiers to start")
    return workers


def stop(workers: list[subprocess.Popen[str]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)


def test_two_workers_send_each_notification_once(postgres_url: str, tmp_path: Path,
                                                 receiver: HttpReceiver) -> None:
    roots = [workspace(tmp_path / name, postgres_url, receiver.port) for name in ("a", "b")]
    workers = start_workers(roots, postgres_url)
    try:
        for _ in range(4):
            aiosrun(roots[0], "run", "gated", code=3)  # waits at its gate (3): told once
        last = count(postgres_url, "SELECT max(seq) FROM aios_events WHERE type = "
                                   "'GateOpened'")
        wait_for(lambda: all(cursor(root) >= last for root in roots), 60,
                 "both notifiers to settle every gate")
    finally:
        stop(workers)
    keys = [post.headers["idempotency-key"] for post in receiver.posts]
    assert len(keys) == 4 and len(set(keys)) == 4  # each gate told once, by one worker
    assert count(postgres_url, SENT) == 4


def test_a_sender_killed_before_recording_is_taken_over_with_the_same_delivery_id(
        postgres_url: str, tmp_path: Path, receiver: HttpReceiver) -> None:
    roots = [workspace(tmp_path / name, postgres_url, receiver.port) for name in ("a", "b")]
    workers = start_workers(roots, postgres_url)
    answer = receiver.hold_next()
    try:
        aiosrun(roots[0], "run", "gated", code=3)
        wait_for(lambda: len(receiver.posts) == 1, 60, "the first delivery")
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            owner = conn.execute("SELECT owner FROM aios_leases WHERE run LIKE "
                                 "'notify:%'").fetchone()[0]
        sender = next(w for w in workers if f":{w.pid}:" in owner)
        os.kill(sender.pid, signal.SIGKILL)  # sent, not recorded
        sender.wait(timeout=30)
        answer.set()
        wait_for(lambda: count(postgres_url, SENT) == 1, 60,
                 "the other worker to send it and record it")
        survivor = roots[workers.index(next(w for w in workers if w is not sender))]
        last = count(postgres_url, "SELECT max(seq) FROM aios_events")
        wait_for(lambda: cursor(survivor) >= last, 60, "the survivor to settle the log")
    finally:
        answer.set()
        stop(workers)
    keys = [post.headers["idempotency-key"] for post in receiver.posts]
    assert len(keys) == 2 and keys[0] == keys[1]  # delivered again, with the same id
    assert count(postgres_url, SENT) == 1
