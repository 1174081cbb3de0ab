"""The notifier in-process against a real HTTP receiver on 127.0.0.1: what each trigger
says, the webhook formats, a retry after a 5xx, the budget told once, and the validation of
``notify:``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from aiosrun.dsl.errors import PlaybookError
from aiosrun.runtime import Engine
from aiosrun.runtime.log.eventlog import NewEvent
from aiosrun.runtime.notify import Notifier
from aiosrun.runtime.notify.messages import Notification
from aiosrun.runtime.notify.notifier import webhook_request
from aiosrun.runtime.workspace import load_settings

from tests.support.receivers import http_receiver

FAILING = """apiVersion: aiosrun/v1
kind: Playbook
name: failing
on_failure: halt
steps:
  - id: charge
    uses: debug.fail
    with: {times: 9, error: permanent}
"""
GATED = """apiVersion: aiosrun/v1
kind: Playbook
name: gated
steps:
  - id: review
    gate: {message: "Ship it?"}
"""
STRICT = """apiVersion: aiosrun/v1
kind: Playbook
name: strict
on:
  event: lead.created
inputs:
  email: {type: string}
steps:
  - id: note
    uses: debug.echo
    with: {value: "${{ inputs.email }}"}
"""


def workspace(root: Path, port: int, extra: str = "") -> Path:
    root.mkdir(parents=True)
    (root / "aios.yaml").write_text(f"""apiVersion: aiosrun/v1
kind: Workspace
adapters:
  http: {{allow_hosts: ["127.0.0.1:{port}"]}}
notify:
  - webhook: http://127.0.0.1:{port}/n
{extra}""", "utf-8")
    (root / "playbooks").mkdir()
    (root / "playbooks" / "failing.yaml").write_text(FAILING, "utf-8")
    (root / "playbooks" / "strict.yaml").write_text(STRICT, "utf-8")
    (root / "playbooks" / "gated.yaml").write_text(GATED, "utf-8")
    return root


def rounds(root: Path, then: Any, *, before: Any = None) -> list[str]:
    said: list[str] = []

    async def main() -> None:
        async with Engine.open(root) as engine:
            await engine.apply([root / "playbooks"])
            notifier = Notifier(engine.ws, said.append)
            await notifier.round()  # the first round starts at the log's end
            await then(engine)
            await notifier.round()
            if before is not None:
                await before(engine)
            await notifier.round()
            await notifier.round()

    trio.run(main)
    return said


def test_a_failed_run_and_a_rejected_event_are_told_once(tmp_path: Path) -> None:
    with http_receiver() as hook:
        root = workspace(tmp_path / "ws", hook.port)

        async def then(engine: Engine) -> None:
            run = await engine.start("failing")
            assert run.status == "failed"
            await engine.emit("lead.created", {"email": 42}, wait=True)

        rounds(root, then)
        triggers = [p.body["trigger"] for p in hook.posts]
        assert triggers == ["run_failed", "event_rejected"]
        failed = hook.posts[0].body
        assert failed["title"] == "Run failed: failing" and "permanent" in failed["text"]
        assert failed["url"] is None  # no server.public_url, no server.listen: no link
        assert "Nothing was started" in hook.posts[1].body["text"]


def test_a_5xx_is_tried_again_next_round_and_sent_once(tmp_path: Path) -> None:
    with http_receiver() as hook:
        root = workspace(tmp_path / "ws", hook.port)
        hook.fail_next(1)

        async def then(engine: Engine) -> None:
            await engine.start("failing")

        rounds(root, then)
        assert [p.body["trigger"] for p in hook.posts] == ["run_failed"]
        keys = {p.headers["idempotency-key"] for p in hook.posts}
        assert len(keys) == 1


def test_a_budget_past_80_percent_is_told_once_per_day(tmp_path: Path) -> None:
    with http_receiver() as hook:
        root = workspace(tmp_path / "ws", hook.port,
                         "policy:\n  budget: {daily_usd: 1.0}\n")

        def spend(usd: float) -> Any:
            async def act(engine: Engine) -> None:
                engine.ws.log.append(NewEvent("ModelCalled", {"cost_usd": usd}))
            return act

        rounds(root, spend(0.5), before=spend(0.35))
        assert [p.body["trigger"] for p in hook.posts] == ["budget"]
        assert hook.posts[0].body["title"].startswith("Budget 85% spent (daily")
        rounds_again = Notifier  # a new serve: the cursor file remembers the budget
        said: list[str] = []

        async def again() -> None:
            async with Engine.open(root) as engine:
                notifier = rounds_again(engine.ws, said.append)
                engine.ws.log.append(NewEvent("ModelCalled", {"cost_usd": 0.01}))
                await notifier.round()

        trio.run(again)
        assert len(hook.posts) == 1


def test_a_permanent_refusal_is_recorded_and_said(tmp_path: Path) -> None:
    with http_receiver() as hook:
        root = workspace(tmp_path / "ws", hook.port,
                         '  - webhook: "http://${{ secrets.ELSEWHERE }}/x"\n')
        (root / ".env").write_text("ELSEWHERE=hidden-host.example.com\n", "utf-8")

        async def then(engine: Engine) -> None:
            await engine.start("failing")

        said = rounds(root, then)
        assert len(hook.posts) == 1
        assert len(said) == 1 and said[0].startswith("notification run_failed:")
        text = "".join(p.read_text() for p in (root / ".aios" / "log").glob("*.jsonl"))
        assert text.count('"NotificationFailed"') == 1
        assert "is not in adapters.http.allow_hosts" in said[0]
        assert "hidden-host" not in said[0] + text


NOTE = Notification("gate:7", "gate", "Approval needed: p / g", "Pay <Ada> & co?",
                    "https://ops.example.com/ui/inbox#r-g", "r", "p", "g")


def test_webhook_formats() -> None:
    slack = webhook_request("slack", "https://hooks.example.com/T/B/X", NOTE)
    assert slack["json"] == {"text": "*Approval needed: p / g*\nPay &lt;Ada&gt; &amp; co?\n"
                                     "<https://ops.example.com/ui/inbox#r-g|Open in aiosrun>"}
    ntfy = webhook_request("ntfy", "https://ntfy.example.com/shop-alerts", NOTE)
    assert ntfy["url"] == "https://ntfy.example.com/"
    assert ntfy["json"] == {"topic": "shop-alerts", "title": "Approval needed: p / g",
                            "message": "Pay <Ada> & co?", "tags": ["gate"], "priority": 4,
                            "click": "https://ops.example.com/ui/inbox#r-g"}
    plain = webhook_request("json", "https://x.example.com/h", NOTE)
    assert plain["json"]["key"] == "gate:7" and plain["method"] == "POST"


@pytest.mark.parametrize(("entry", "message"), [
    ("  - webhook: https://hooks.slack.com/services/X\n",
     "aios.yaml:5:14: error: hooks.slack.com is not in adapters.http.allow_hosts"),
    ("  - email: a@example.com\n    format: slack\n",
     "aios.yaml:6:13: error: format is for webhooks"),
    ("  - on: [gate]\n", "aios.yaml:5:5: error: a notify channel is either"),
    ("  - webhook: http://127.0.0.1:1/x\n    on: [gates]\n", "aios.yaml:6:10: error:"),
])
def test_notify_is_validated_with_positions(tmp_path: Path, entry: str, message: str) -> None:
    (tmp_path / "aios.yaml").write_text(
        "apiVersion: aiosrun/v1\nkind: Workspace\nadapters: {http: {allow_hosts: "
        "['127.0.0.1:1']}}\nnotify:\n" + entry, "utf-8")
    with pytest.raises(PlaybookError) as caught:
        load_settings(tmp_path)
    text = str(caught.value).removeprefix(f"{tmp_path}/")
    assert text.startswith(message), text
    assert "\n" not in text.strip()


def test_a_gate_decided_before_it_was_told_and_its_rejection_send_nothing(
        tmp_path: Path) -> None:
    with http_receiver() as hook:
        root = workspace(tmp_path / "ws", hook.port)

        async def then(engine: Engine) -> None:
            quick = await engine.start("gated")
            await engine.reject(quick.id, "review")  # before the notifier's round
            await engine.start("gated")

        rounds(root, then)
        assert [p.body["trigger"] for p in hook.posts] == ["gate"]
        assert hook.posts[0].body["title"] == "Approval needed: gated / review"
