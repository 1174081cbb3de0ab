"""Notifications from a real ``aiosrun serve``: a webhook to a local HTTP receiver and mail
to a local SMTP server (aiosmtpd), each once per item, also across a kill -9."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.receivers import (
    HttpReceiver,
    MailReceiver,
    http_receiver,
    smtp_receiver,
    wait_for,
)

from .conftest import Server, aiosrun_command, clean_env, free_port, make_workspace

HOOK_SECRET = "topic-s3cr3t-value-42"

GATED = """apiVersion: aiosrun/v1
kind: Playbook
name: gated
steps:
  - id: review
    gate:
      message: "Send the <b>quote</b> to ada@example.com? key ${{ secrets.HOOK_TOPIC }}"
  - id: done
    uses: debug.echo
    with: {value: shipped}
"""

FLAKY = """apiVersion: aiosrun/v1
kind: Playbook
name: flaky
steps:
  - id: check
    uses: debug.fail
    with: {times: 5, error: permanent, value: checked}
    escalate: {after_attempts: 1, message: needs a look}
"""


def workspace_text(http_port: int, smtp_port: int) -> str:
    return f"""apiVersion: aiosrun/v1
kind: Workspace
server:
  public_url: https://ops.example.com/
adapters:
  http:
    allow_hosts: ["127.0.0.1:{http_port}"]
  email:
    from: aiosrun@example.com
    smtp: {{host: 127.0.0.1, port: {smtp_port}, starttls: false}}
notify:
  - webhook: "http://127.0.0.1:{http_port}/hook/${{{{ secrets.HOOK_TOPIC }}}}"
    on: [gate, escalation]
  - email: owner@example.com
"""


@pytest.fixture
def receivers() -> Iterator[tuple[HttpReceiver, MailReceiver]]:
    with http_receiver() as hook, smtp_receiver() as mail:
        yield hook, mail


def served(root: Path, hook: HttpReceiver, mail: MailReceiver) -> Server:
    make_workspace(root, workspace_text(hook.port, mail.port))
    (root / ".env").write_text(f"HOOK_TOPIC={HOOK_SECRET}\n", "utf-8")
    for name, text in (("gated", GATED), ("flaky", FLAKY)):
        (root / "playbooks" / f"{name}.yaml").write_text(text, "utf-8")
    done = subprocess.run([*aiosrun_command(), "apply"], cwd=root, capture_output=True,
                          text=True, timeout=60, env=clean_env())
    assert done.returncode == 0, done.stderr
    return Server(root, free_port())


def log_text(root: Path) -> str:
    return "".join(p.read_text("utf-8") for p in sorted((root / ".aios" / "log").glob("*.jsonl")))


def test_a_gate_is_told_once_by_webhook_and_mail_even_across_kill_9(
        tmp_path: Path, receivers: tuple[HttpReceiver, MailReceiver]) -> None:
    hook, mail = receivers
    server = served(tmp_path / "shop", hook, mail)
    server.start()
    try:
        with server.client(None) as api:
            run = api.post("/api/v1/runs?wait=10s", json={"playbook": "gated"}).json()
        assert run["status"] == "waiting"
        wait_for(lambda: len(hook.posts) == 1 and len(mail.messages) == 1, what="both sent")
        wait_for(lambda: log_text(server.root).count('"NotificationSent"') == 2,
                 what="both recorded")
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL

        posted = hook.posts[0]
        assert posted.path == f"/hook/{HOOK_SECRET}"
        assert posted.body["trigger"] == "gate" and posted.body["run"] == run["id"]
        assert posted.body["url"] == f"https://ops.example.com/ui/inbox#{run['id']}-review"
        assert "Send the <b>quote</b> to ada@example.com? key ***" in posted.body["text"]
        assert posted.headers["idempotency-key"].startswith("notify:webhook:json:")
        message = mail.messages[0]
        assert message["To"] == "owner@example.com"
        assert message["Subject"] == "Approval needed: gated / review"
        body = message.get_payload()
        assert isinstance(body, str) and f"https://ops.example.com/ui/inbox#{run['id']}" in body
        for text in (str(posted.body), posted.headers.get("title", ""), message.as_string(),
                     log_text(server.root)):
            assert HOOK_SECRET not in text

        # as if the kill had come between the sends and the cursor's update: only the
        # NotificationSent records in the log can tell that both went out
        (server.root / ".aios" / "notify.cursor").write_text('{"seq": 0}', "utf-8")
        server.start()
        with server.client(None) as api:
            flaky = api.post("/api/v1/runs?wait=10s", json={"playbook": "flaky"}).json()
        assert flaky["status"] == "waiting"
        wait_for(lambda: len(hook.posts) == 2 and len(mail.messages) == 2,
                 what="the escalation told")
        assert hook.posts[1].body["trigger"] == "escalation"
        assert mail.messages[1]["Subject"] == "Needs a look: flaky / check"
        assert [p.body["trigger"] for p in hook.posts] == ["gate", "escalation"]
        assert len(mail.messages) == 2
    finally:
        if server.process is not None:
            server.stop()
