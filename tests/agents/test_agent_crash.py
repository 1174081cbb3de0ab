"""Durability of the loop: the process is killed with SIGKILL between a tool call's effect and
its record; ``aiosrun resume`` finishes the run without asking the model again for a recorded
turn and without making the effect twice."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from tests.agents.workspace import PLAYBOOK, ledger, make, tool_answers, turn
from tests.e2e.conftest import Runner
from tests.support.fake_openai import FakeOpenAI, Reply


def script(request: dict[str, Any]) -> Reply:
    if turn(request) == 1:
        return Reply(tool_calls=[("ledger__list_invoices", {}),
                                 ("ledger__record_payment", {"invoice": "INV-1", "amount": 10})])
    assert tool_answers(request)[1]["ok"]
    return Reply({"matched": ["INV-1"], "confidence": 0.95}, text=True)


def test_kill_between_effect_and_record_then_resume(aiosrun: Runner, tmp_path: Path) -> None:
    with FakeOpenAI(script) as api:
        root = make(tmp_path, api.base_url)
        (root / "playbooks" / "reconcile.yaml").write_text(
            PLAYBOOK.replace("policy: {require_approval: [ledger.record_payment]}\n", ""))
        assert aiosrun("apply").returncode == 0
        (root / "crash-after-effect").touch()
        killed = aiosrun("run", "reconcile", "--input", 'payment={"amount": 10}')
        assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
        assert len(api.requests) == 1
        assert len(ledger(root)) == 1  # the effect happened; its record did not
        resumed = aiosrun("resume", "--all", "--format", "json")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert len(api.requests) == 2  # turn 1 was recorded: not asked (nor paid) again
    runs = json.loads(resumed.stdout)
    run = runs[0] if isinstance(runs, list) else runs
    assert run["status"] == "succeeded", run
    assert run["outputs"] == {"matched": ["INV-1"]}
    assert len(ledger(root)) == 1  # the same idempotency key: the payment is recorded once
    shown = aiosrun("timeline", run["id"])
    assert "match/turn-1/ledger__record_payment" in shown.stdout, shown.stdout
    assert "turn 1 tier 1 small (small-1)" in shown.stdout
    assert "calls ledger__list_invoices, ledger__record_payment" in shown.stdout
    assert "turn 2 tier 1 small (small-1)" in shown.stdout
