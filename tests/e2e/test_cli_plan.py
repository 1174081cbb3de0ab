"""``aiosrun plan``: steps, gates (policy ones too), tiers and the worst-case cost."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Runner

WORKSPACE = """apiVersion: aiosrun/v1
kind: Workspace
models:
  small: {provider: replay, model: s-1, price: {input: 1, output: 2}, max_tokens: 100}
  large: {provider: openai, model: l-1, base_url: "http://127.0.0.1:9/v1",
          price: {input: 10, output: 30}, max_tokens: 50}
policy:
  require_approval: [email.send]
"""

PLAYBOOK = """apiVersion: aiosrun/v1
kind: Playbook
name: plan-me
policy: {budget_usd: 0.25}
steps:
  - id: draft
    llm:
      prompt: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
      tiers:
        - model: small
          accept: ${{ output.text != '' }}
        - model: large
  - id: ok
    gate: {message: "Send it?"}
  - id: each
    foreach:
      items: ${{ fromJSON('[1, 2]') }}
      steps:
        - id: shout
          llm: {model: small, prompt: "${{ item }}", output: {type: object}}
  - id: invoice
    uses: billing.create_invoice
    with: {customer: a@b.c, amount: 5}
    compensate:
      uses: billing.void_invoice
      with: {invoice_id: "${{ steps.invoice.outputs.id }}"}
  - id: send
    uses: email.send
    with: {to: a@b.c, subject: hi, body: "${{ steps.draft.outputs.text }}"}
"""


def test_plan_lists_steps_gates_tiers_and_the_worst_case(aiosrun: Runner,
                                                         tmp_path: Path) -> None:
    (tmp_path / "aios.yaml").write_text(WORKSPACE)
    (tmp_path / "p.yaml").write_text(PLAYBOOK)
    done = aiosrun("plan", "p.yaml", "--format", "json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert [s["path"] for s in plan["steps"]] == ["draft", "ok", "each", "each/shout",
                                                  "invoice", "send"]
    assert [(g["gate"], g["kind"]) for g in plan["gates"]] == [("ok", "gate"),
                                                               ("send#approval", "policy")]
    draft = [m for m in plan["models"] if m["step"] == "draft"]
    assert [(m["alias"], m["model"], m["attempts"]) for m in draft] == [
        ("small", "s-1", 1), ("large", "l-1", 1)]
    # 35 characters: 10 tokens + 4 of overhead; plain text: one attempt at max_tokens
    small = (14 * 1 + 100 * 2) / 1e6
    large = (14 * 10 + 50 * 30) / 1e6
    assert [m["worst_case_usd"] for m in draft] == [small, large]
    assert plan["worst_case_usd"] == round(small + large, 6)
    shout = next(m for m in plan["models"] if m["step"] == "each/shout")
    assert shout["per_item"] and shout["attempts"] == 3  # structured: 2 validation retries
    assert shout["output_tokens"] == 300
    assert plan["worst_case_per_foreach_item_usd"] == round(shout["worst_case_usd"], 6)
    assert plan["budget_usd"] == 0.25

    text = aiosrun("plan", "p.yaml")
    assert text.returncode == 0
    assert "send: email.send  [approval gate]" in text.stdout
    assert "invoice: billing.create_invoice  undo: billing.void_invoice" in text.stdout
    assert f"worst-case model cost of one run: ${small + large:.6f} (budget $0.25)" \
        in text.stdout


def test_plan_of_an_applied_playbook_and_errors(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "aios.yaml").write_text(WORKSPACE)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "p.yaml").write_text(PLAYBOOK)
    assert aiosrun("apply").returncode == 0
    assert aiosrun("plan", "plan-me").returncode == 0
    missing = aiosrun("plan", "nope")
    assert missing.returncode == 1 and "no playbook file or applied playbook named 'nope'" \
        in missing.stderr
    (tmp_path / "bad.yaml").write_text(PLAYBOOK.replace("model: small, prompt", "modle: x, prompt"))
    bad = aiosrun("plan", "bad.yaml")
    assert bad.returncode == 1 and "bad.yaml:" in bad.stdout and "Traceback" not in bad.stderr


def test_validate_checks_model_aliases_against_the_workspace(aiosrun: Runner,
                                                             tmp_path: Path) -> None:
    (tmp_path / "aios.yaml").write_text(WORKSPACE)
    (tmp_path / "p.yaml").write_text(PLAYBOOK.replace("- model: large", "- model: lareg"))
    done = aiosrun("validate", "p.yaml")
    assert done.returncode == 1
    assert done.stdout.strip() == (
        "p.yaml:12:18: error: unknown model alias 'lareg' (aios.yaml models: 'large', "
        "'small'); did you mean 'large'? [unknown-model]")
    assert aiosrun("run", "p.yaml").returncode == 1
    # a workspace without models declares none to check against: the playbook is valid
    (tmp_path / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n")
    assert aiosrun("validate", "p.yaml").returncode == 0


def test_plan_shows_the_budget_exactly(aiosrun: Runner, tmp_path: Path) -> None:
    from aiosrun.runtime.cli.plan import usd

    (tmp_path / "p.yaml").write_text(PLAYBOOK.replace("budget_usd: 0.25", "budget_usd: 0.005"))
    (tmp_path / "aios.yaml").write_text(WORKSPACE)
    text = aiosrun("plan", "p.yaml")
    assert text.returncode == 0 and "(budget $0.005)" in text.stdout, text.stdout
    assert [usd(x) for x in (0.25, 0.5, 10, 0.0001, 0)] == [
        "0.25", "0.50", "10.00", "0.0001", "0.00"]
