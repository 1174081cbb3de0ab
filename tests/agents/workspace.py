"""A workspace for agent tests: a bookkeeper agent with a ledger adapter (a real adapter in
the workspace's ``adapters/``, writing to a real file once per idempotency key) and a model
alias pointing at the local OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LEDGER = '''\
import json
import os
import signal
from pathlib import Path

from aiosrun.adapters.base import Action, Adapter


class Ledger(Adapter):
    name = "ledger"
    actions = {
        "list_invoices": Action("Lists the open invoices.", {"type": "object",
                                "additionalProperties": False, "properties": {}}),
        "record_payment": Action("Records a payment against an invoice.", {
            "type": "object", "required": ["invoice", "amount"], "additionalProperties": False,
            "properties": {"invoice": {"type": "string"}, "amount": {"type": "number"}}}),
    }

    async def call(self, action, args, ctx):
        if action == "list_invoices":
            return {"invoices": [{"id": "INV-1", "amount": 10}, {"id": "INV-2", "amount": 25}]}
        book = ctx.workspace / "ledger.jsonl"
        lines = book.read_text().splitlines() if book.exists() else []
        if not any(json.loads(line)["key"] == ctx.idempotency_key for line in lines):
            with book.open("a") as out:
                out.write(json.dumps({"key": ctx.idempotency_key, **args}) + "\\n")
        marker = ctx.workspace / "crash-after-effect"
        if marker.exists():  # the effect is done and not yet recorded: die here
            marker.unlink()
            os.kill(os.getpid(), signal.SIGKILL)
        return {"recorded": args["invoice"]}
'''

AGENT = """\
apiVersion: aiosrun/v1
kind: Agent
name: bookkeeper
instructions: You reconcile payments against open invoices. Never invent an invoice.
model: small
tools:
  - uses: ledger.list_invoices
  - uses: ledger.record_payment
output:
  type: object
  required: [matched, confidence]
  properties:
    matched: {type: array, items: {type: string}}
    confidence: {type: number}
limits: {max_turns: MAX_TURNS, max_tool_calls: 10, budget_usd: BUDGET}
escalate: {below_confidence: 0.6}
"""

PLAYBOOK = """\
apiVersion: aiosrun/v1
kind: Playbook
name: reconcile
policy: {require_approval: [ledger.record_payment]}
inputs:
  payment: {type: object}
steps:
  - id: match
    agent: bookkeeper
    with:
      task: Match this payment to an open invoice and record it.
      context: ${{ inputs.payment }}
outputs:
  matched: ${{ steps.match.outputs.matched }}
"""


def make(root: Path, base_url: str, *, max_turns: int = 8, budget: float = 1.0) -> Path:
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "playbooks").mkdir(exist_ok=True)
    (root / "adapters").mkdir(exist_ok=True)
    (root / "aios.yaml").write_text(
        "apiVersion: aiosrun/v1\nkind: Workspace\nname: shop\nmodels:\n"
        f"  small: {{provider: openai, model: small-1, base_url: '{base_url}', "
        "price: {input: 100, output: 200}}\n")
    (root / "adapters" / "ledger.py").write_text(LEDGER)
    (root / "agents" / "bookkeeper.yaml").write_text(
        AGENT.replace("MAX_TURNS", str(max_turns)).replace("BUDGET", str(budget)))
    (root / "playbooks" / "reconcile.yaml").write_text(PLAYBOOK)
    return root


def tool_answers(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The tools' answers the model has read so far, parsed."""
    return [json.loads(m["content"]) for m in request["messages"] if m["role"] == "tool"]


def turn(request: dict[str, Any]) -> int:
    """Which turn this request is: one more than the assistant messages before it."""
    return 1 + sum(m["role"] == "assistant" for m in request["messages"])


def ledger(root: Path) -> list[dict[str, Any]]:
    book = root / "ledger.jsonl"
    return [json.loads(line) for line in book.read_text().splitlines()] if book.exists() else []
