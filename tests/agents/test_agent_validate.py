"""``kind: Agent`` files and inline ``agent:`` bodies, checked by ``aiosrun validate`` with
positioned errors: schema, tools that exist, declared models and memory domains."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import Runner

WORKSPACE = """\
apiVersion: aiosrun/v1
kind: Workspace
name: shop
models:
  small: {provider: replay, model: small-1}
mcp:
  bank: {command: [python, bank.py]}
"""

AGENT = """\
apiVersion: aiosrun/v1
kind: Agent
name: bookkeeper
instructions: You reconcile payments against open invoices.
model: small
tools:
  - uses: billing.list_invoices
  - memory: finances
  - mcp: bank
output: {type: object, required: [matched], properties: {matched: {type: array}}}
limits: {max_turns: 6, max_tool_calls: 10, budget_usd: 0.5}
escalate: {below_confidence: 0.6}
"""

PLAYBOOK = """\
apiVersion: aiosrun/v1
kind: Playbook
name: reconcile
memory: [finances]
steps:
  - id: match
    agent: bookkeeper
    with: {task: "Match the payments"}
"""


def _workspace(root: Path, agent: str = AGENT, playbook: str = PLAYBOOK) -> Path:
    (root / "agents").mkdir(parents=True)
    (root / "playbooks").mkdir()
    (root / "aios.yaml").write_text(WORKSPACE)
    (root / "agents" / "bookkeeper.yaml").write_text(agent)
    (root / "playbooks" / "reconcile.yaml").write_text(playbook)
    return root


def test_a_valid_agent_and_its_playbook_pass(aiosrun: Runner, tmp_path: Path) -> None:
    _workspace(tmp_path)
    done = aiosrun("validate")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid" in done.stderr


def test_agent_file_errors_are_positioned(aiosrun: Runner, tmp_path: Path) -> None:
    broken = AGENT.replace("billing.list_invoices", "billing.list_invoice") \
        .replace("model: small", "model: large").replace("mcp: bank", "mcp: bnk") \
        .replace("max_turns: 6", "max_turn: 6")
    _workspace(tmp_path, agent=broken)
    done = aiosrun("validate")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(line.startswith("agents/bookkeeper.yaml:5:8: error: unknown model alias "
                               "'large'") for line in lines), lines
    assert any(line.startswith("agents/bookkeeper.yaml:7:11: error: unknown tool action "
                               "'billing.list_invoice'") and "list_invoices" in line
               for line in lines), lines
    assert any(line.startswith("agents/bookkeeper.yaml:9:10: error: unknown MCP server "
                               "'bnk'") for line in lines), lines
    assert any(line.startswith("agents/bookkeeper.yaml:11:10: error: unknown key "
                               "'max_turn'") for line in lines), lines
    assert "Traceback" not in done.stdout + done.stderr


def test_memory_domain_must_be_declared_by_the_playbook(aiosrun: Runner,
                                                        tmp_path: Path) -> None:
    _workspace(tmp_path, playbook=PLAYBOOK.replace("memory: [finances]\n", ""))
    done = aiosrun("validate")
    assert done.returncode == 1
    assert ("playbooks/reconcile.yaml:6:12: error: agent 'bookkeeper' searches memory "
            "domain 'finances', which this playbook does not declare in 'memory:'") \
        in done.stdout


def test_unknown_agent_and_missing_task(aiosrun: Runner, tmp_path: Path) -> None:
    _workspace(tmp_path, playbook=PLAYBOOK.replace("agent: bookkeeper", "agent: bookeeper")
               .replace('with: {task: "Match the payments"}', "with: {goal: x}"))
    done = aiosrun("validate")
    assert done.returncode == 1
    assert "playbooks/reconcile.yaml:7:12: error: unknown agent 'bookeeper'" in done.stdout
    assert "did you mean 'bookkeeper'" in done.stdout
    assert "playbooks/reconcile.yaml:8:12: error: unknown argument 'goal' for an agent" \
        in done.stdout


def test_inline_agent_body_is_checked_in_place(aiosrun: Runner, tmp_path: Path) -> None:
    inline = PLAYBOOK.replace("    agent: bookkeeper\n", """\
    agent:
      instructions: Sort the payments.
      tools: [{uses: billing.nope}, {playbook: missing-one}]
      limits: {max_turns: 0}
""")
    _workspace(tmp_path, playbook=inline)
    done = aiosrun("validate")
    assert done.returncode == 1, done.stdout
    out = done.stdout
    assert "playbooks/reconcile.yaml:9:22: error: unknown tool action 'billing.nope'" in out
    assert "playbooks/reconcile.yaml:9:48: error: unknown playbook 'missing-one'" in out
    assert "playbooks/reconcile.yaml:10:27: error: expected a number >= 1" in out


def test_plan_counts_an_agent_at_its_budget(aiosrun: Runner, tmp_path: Path) -> None:
    _workspace(tmp_path)
    shown = aiosrun("plan", "playbooks/reconcile.yaml")
    assert shown.returncode == 0, shown.stderr
    assert "match: agent" in shown.stdout
    assert "match agent bookkeeper: at most 6 turns, <= $0.500000 (limits.budget_usd)" \
        in shown.stdout
    assert "worst-case model cost of one run: $0.500000" in shown.stdout
