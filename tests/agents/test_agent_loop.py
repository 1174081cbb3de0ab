"""The agent loop against the local OpenAI-compatible server speaking tool calls: several
turns, a refused tool, a schema-invalid argument, a policy gate mid-loop (approved, and
rejected: the rejection goes back to the model), limits and escalations with the transcript."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from aiosrun.runtime import Engine

from tests.agents.workspace import ledger, make, tool_answers, turn
from tests.support.fake_openai import FakeOpenAI, Reply

PAYMENT = {"payment": {"amount": 10, "reference": "INV-1"}}
FINAL = {"matched": ["INV-1"], "confidence": 0.9}


def governed(request: dict[str, Any]) -> Reply:
    """Turn 1 lists invoices and calls a tool it was not given; turn 2 records a payment with
    a bad argument; turn 3 records it properly (a gate); turn 4 answers."""
    n = turn(request)
    if n == 1:
        return Reply(tool_calls=[("ledger__list_invoices", {}), ("ledger__delete_all", {})])
    if n == 2:
        return Reply(tool_calls=[("ledger__record_payment", {"invoice": 1, "amount": 10})])
    if n == 3:
        return Reply(tool_calls=[("ledger__record_payment",
                                  {"invoice": "INV-1", "amount": 10})])
    last = tool_answers(request)[-1]
    return Reply(FINAL if last["ok"] else {"matched": [], "confidence": 0.9}, text=True)


def run(root: Path, steps: Callable[[Engine], Any]) -> Any:
    async def main() -> Any:
        async with Engine.open(root) as engine:
            await engine.apply()
            return await steps(engine)

    return trio.run(main)


def test_turns_tools_refusals_and_an_approved_gate(tmp_path: Path) -> None:
    with FakeOpenAI(governed) as api:
        root = make(tmp_path, api.base_url)

        async def steps(engine: Engine) -> Any:
            waiting = await engine.start("reconcile", PAYMENT)
            asked = len(api.requests)
            done = await engine.approve(waiting.id, "match/turn-3/ledger__record_payment#approval")
            return waiting, asked, done

        waiting, asked, done = run(root, steps)
    assert waiting.status == "waiting"
    assert waiting.waiting["id"] == "match/turn-3/ledger__record_payment#approval"
    assert asked == 3  # the gate stopped the loop before the effect
    assert done.status == "succeeded", done.error
    assert done.outputs == {"matched": ["INV-1"]}
    assert len(api.requests) == 4  # resuming after the gate asked for nothing twice
    answers = tool_answers(api.requests[-1]["body"])
    assert answers[0] == {"ok": True, "result": {"invoices": [
        {"id": "INV-1", "amount": 10}, {"id": "INV-2", "amount": 25}]}}
    assert answers[1]["error_class"] == "refused"
    assert "no tool 'ledger__delete_all'" in answers[1]["error"]
    assert answers[2]["error_class"] == "invalid_arguments"
    assert "invoice" in answers[2]["error"]
    assert answers[3] == {"ok": True, "result": {"recorded": "INV-1"}}
    assert [e["invoice"] for e in ledger(root)] == ["INV-1"]
    steps = {s.path: s for s in done.steps}
    assert steps["match/turn-1/ledger__list_invoices"].status == "succeeded"
    assert steps["match/turn-1/ledger__delete_all"].status == "failed"
    assert steps["match/turn-2/ledger__record_payment"].status == "failed"
    assert steps["match/turn-3/ledger__record_payment"].status == "succeeded"
    # tokens and cost of every turn are counted in the run
    assert done.cost_usd > 0
    offered = {t["function"]["name"] for t in api.requests[0]["body"]["tools"]}
    assert offered == {"ledger__list_invoices", "ledger__record_payment"}


def test_a_rejected_gate_goes_back_to_the_model(tmp_path: Path) -> None:
    with FakeOpenAI(governed) as api:
        root = make(tmp_path, api.base_url)

        async def steps(engine: Engine) -> Any:
            waiting = await engine.start("reconcile", PAYMENT)
            return await engine.reject(waiting.id, waiting.waiting["id"], comment="not that one")

        done = run(root, steps)
        last = tool_answers(api.requests[-1]["body"])[-1]
    assert done.status == "succeeded", done.error
    assert done.outputs == {"matched": []}
    assert last["ok"] is False and last["error_class"] == "rejected"
    assert "not that one" in last["error"]
    assert ledger(root) == []


def looping(request: dict[str, Any]) -> Reply:
    return Reply(tool_calls=[("ledger__list_invoices", {})])


def test_max_turns_escalates_with_the_transcript_and_retry_goes_on(tmp_path: Path) -> None:
    answers = {"final": False}

    def script(request: dict[str, Any]) -> Reply:
        return Reply(FINAL, text=True) if answers["final"] else looping(request)

    with FakeOpenAI(script) as api:
        root = make(tmp_path, api.base_url, max_turns=3)

        async def steps(engine: Engine) -> Any:
            waiting = await engine.start("reconcile", PAYMENT)
            inbox = await engine.inbox()
            answers["final"] = True
            done = await engine.resolve(waiting.id, "match", "retry")
            return waiting, inbox, done

        waiting, inbox, done = run(root, steps)
        assert len(api.requests) == 4  # 3 turns, then one more after the retry
    assert waiting.status == "waiting"
    item = inbox[0].to_json()
    assert item["kind"] == "escalation" and item["step"] == "match"
    assert "limit of 3 turns" in item["message"]
    transcript = item["args"]["transcript"]
    assert [t["turn"] for t in transcript if "tool" in t] == [1, 2, 3]
    assert done.status == "succeeded", done.error
    assert done.outputs == {"matched": ["INV-1"]}


def test_budget_exhausted_mid_loop_escalates_and_skip_answers_for_the_agent(
        tmp_path: Path) -> None:
    with FakeOpenAI(looping) as api:
        # a turn's worst case is about $0.21 here (the prices are huge on purpose)
        root = make(tmp_path, api.base_url, budget=0.5)

        async def steps(engine: Engine) -> Any:
            waiting = await engine.start("reconcile", PAYMENT)
            inbox = await engine.inbox()
            done = await engine.resolve(waiting.id, "match", "skip",
                                        outputs={"matched": ["INV-9"], "confidence": 1})
            return waiting, inbox, done

        waiting, inbox, done = run(root, steps)
    assert waiting.status == "waiting"
    item = inbox[0].to_json()
    assert "limits.budget_usd" in item["message"]
    assert 0 < len(api.requests) < 8  # stopped by the budget, before max_turns
    assert waiting.cost_usd <= 0.5
    assert done.status == "succeeded"
    assert done.outputs == {"matched": ["INV-9"]}


def test_low_confidence_and_invalid_final_answers(tmp_path: Path) -> None:
    def script(request: dict[str, Any]) -> Reply:
        n = turn(request)
        if n == 1:
            return Reply("I think INV-1", text=True)  # not JSON: told to answer again
        if n == 2:
            return Reply({"matched": "INV-1", "confidence": 0.9}, text=True)  # bad
        return Reply({"matched": ["INV-1"], "confidence": 0.3}, text=True)

    with FakeOpenAI(script) as api:
        root = make(tmp_path, api.base_url)

        async def steps(engine: Engine) -> Any:
            waiting = await engine.start("reconcile", PAYMENT)
            return waiting, await engine.inbox()

        waiting, inbox = run(root, steps)
        assert waiting.status == "waiting"
        said = [m["content"] for m in api.requests[-1]["body"]["messages"]
                if m["role"] == "user"]
    assert "only a JSON object" in said[1]
    assert "does not fit the schema: matched" in said[2]
    item = inbox[0].to_json()
    assert "confidence 0.3 is below 0.6" in item["message"]
    assert item["args"]["answer"] == {"matched": ["INV-1"], "confidence": 0.3}
    assert json.dumps(item["args"]["transcript"])


NOTIFY = """\
apiVersion: aiosrun/v1
kind: Playbook
name: notify
description: Tell a customer.
inputs:
  who: {type: string}
steps:
  - id: say
    uses: debug.echo
    with: {value: "told ${{ inputs.who }}"}
outputs:
  said: ${{ steps.say.outputs.value }}
"""


def test_a_playbook_tool_is_a_child_run_and_the_timeline_shows_the_turns(
        tmp_path: Path) -> None:
    def script(request: dict[str, Any]) -> Reply:
        if turn(request) == 1:
            return Reply(tool_calls=[("playbook__notify", {"who": "Ada"})])
        said = tool_answers(request)[0]["result"]["said"]
        return Reply({"matched": [said], "confidence": 0.9}, text=True)

    with FakeOpenAI(script) as api:
        root = make(tmp_path, api.base_url)
        (root / "playbooks" / "notify.yaml").write_text(NOTIFY)
        agent = root / "agents" / "bookkeeper.yaml"
        agent.write_text(agent.read_text().replace("  - uses: ledger.record_payment\n",
                                                   "  - playbook: notify\n"))

        async def steps(engine: Engine) -> Any:
            run = await engine.start("reconcile", PAYMENT)
            return run, (await engine.timeline(run.id)).to_json(), await engine.runs()

        done, timeline, runs = run(root, steps)
        tool = next(t for t in api.requests[0]["body"]["tools"]
                    if t["function"]["name"] == "playbook__notify")
    assert tool["function"]["parameters"]["required"] == ["who"]
    assert done.status == "succeeded", done.error
    assert done.outputs == {"matched": ["told Ada"]}
    assert {r.playbook for r in runs} == {"reconcile", "notify"}
    text = json.dumps(timeline)
    assert '"turn": 1' in text and '"turn": 2' in text
    assert "match/turn-1/playbook__notify" in text
