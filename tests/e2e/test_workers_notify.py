"""DESIGN sections 11 and 15: with two ``serve`` workers on one PostgreSQL store, each with
its own notification cursor, a notification is sent by one of them and recorded once. A
worker SIGKILLed between sending and recording has its claim taken over: the other sends it
again with the same delivery id (at least once, recorded once: docs/decisions.md). Each test
runs with a webhook (a real HTTP server; the id is ``Idempotency-Key``) and with email (a
real SMTP server, aiosmtpd; the id is ``Message-ID``), both on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.support.receivers import http_receiver, smtp_receiver, wait_for

from .conftest import journal_entries
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


@dataclass
class Receiver:
    """A real receiver of one channel kind, as the workers' ``aios.yaml`` names it."""

    kind: str
    settings: str  # the adapters: and notify: lines
    ids: Callable[[], list[str]]  # each delivery's id, in order of arrival
    hold_next: Callable[[], threading.Event]


@pytest.fixture(params=["webhook", "email"])
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    if request.param == "webhook":
        with http_receiver() as hook:
            yield Receiver(
                "webhook",
                f'adapters: {{http: {{allow_hosts: ["127.0.0.1:{hook.port}"]}}}}\n'
                f'notify:\n  - webhook: "http://127.0.0.1:{hook.port}/hook"\n    on: [gate]\n',
                lambda: [post.headers["idempotency-key"] for post in hook.posts],
                hook.hold_next)
    else:
        with smtp_receiver() as mail:
            yield Receiver(
                "email",
                "adapters:\n  email:\n    from: aiosrun@example.com\n"
                f"    smtp: {{host: 127.0.0.1, port: {mail.port}, starttls: false}}\n"
                "notify:\n  - email: owner@example.com\n    on: [gate]\n",
                lambda: [str(message["Message-ID"]) for message in mail.messages],
                mail.hold_next)


def workspace(root: Path, url: str, receiver: Receiver) -> Path:
    (root / "playbooks").mkdir(parents=True)
    (root / "aios.yaml").write_text(
        "apiVersion: aiosrun/v1\nkind: Workspace\n"
        f'store: {{url: "{url}", lease_timeout: 2s}}\n' + receiver.settings)
    (root / "playbooks" / "gated.yaml").write_text(GATED)
    return root


def mails_recorded(root: Path) -> int:
    """Messages the email adapter's ledger (a journal in the store) records as sent."""
    return sum(entry.get("state") == "done" for entry in journal_entries(root, "effects/email"))


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
                                                 receiver: Receiver) -> None:
    roots = [workspace(tmp_path / name, postgres_url, receiver) for name in ("a", "b")]
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
    keys = receiver.ids()
    assert len(keys) == 4 and len(set(keys)) == 4  # each gate told once, by one worker
    assert count(postgres_url, SENT) == 4
    if receiver.kind == "email":
        assert mails_recorded(roots[0]) == 4


def test_a_sender_killed_before_recording_is_taken_over_with_the_same_delivery_id(
        postgres_url: str, tmp_path: Path, receiver: Receiver) -> None:
    roots = [workspace(tmp_path / name, postgres_url, receiver) for name in ("a", "b")]
    workers = start_workers(roots, postgres_url)
    answer = receiver.hold_next()
    try:
        aiosrun(roots[0], "run", "gated", code=3)
        wait_for(lambda: len(receiver.ids()) == 1, 60, "the first delivery")
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
    keys = receiver.ids()
    assert len(keys) == 2 and keys[0] == keys[1]  # delivered again, with the same id
    assert count(postgres_url, SENT) == 1
    if receiver.kind == "email":
        assert mails_recorded(roots[0]) == 1
