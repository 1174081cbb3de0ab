"""Gates, policy approvals, timeouts and escalations, as the operator meets them."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Runner
from .test_cli_runs import workspace

GATED = """apiVersion: aiosrun/v1
kind: Playbook
name: gated
steps:
  - id: invoice
    uses: files.write
    with: {path: invoice.txt, content: "49 USD"}
    compensate: {uses: files.delete, with: {path: invoice.txt}}
  - id: review
    gate:
      message: Send the invoice?
      show: ${{ steps.invoice.outputs }}
  - id: send
    uses: files.append
    with:
      path: sent.txt
      line: "sent (${{ steps.review.outputs.decision }}: ${{ steps.review.outputs.comment }})"
"""


def run_json(aiosrun: Runner, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    done = aiosrun(*args, "--format", "json", env=env)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_gate_waits_durably_and_approve_continues(aiosrun: Runner, tmp_path: Path,
                                                  store: str) -> None:
    workspace(tmp_path, store, gated=GATED)
    aiosrun("apply")
    code, run = run_json(aiosrun, "run", "gated")
    assert code == 3 and run["status"] == "waiting"
    assert run["waiting"]["kind"] == "gate" and run["waiting"]["id"] == "review"
    assert run["waiting"]["message"] == "Send the invoice?"
    assert run["waiting"]["show"] == {"path": "invoice.txt", "bytes": 6}
    text = aiosrun("status", run["id"])
    assert "running" in text.stdout  # the gate step is open
    inbox = json.loads(aiosrun("inbox", "--format", "json").stdout)
    assert [(i["run"], i["kind"], i["id"]) for i in inbox] == [(run["id"], "gate", "review")]
    assert inbox[0]["commands"][0] == f"aiosrun approve {run['id']} review [--comment TEXT]"
    code, final = run_json(aiosrun, "approve", run["id"], "--comment", "ok by me")
    assert code == 0 and final["status"] == "succeeded"
    review = next(s for s in final["steps"] if s["id"] == "review")
    assert review["outputs"]["decision"] == "approved"
    assert review["outputs"]["comment"] == "ok by me" and review["outputs"]["decided_at"]
    assert (tmp_path / "sent.txt").read_text() == "sent (approved: ok by me)\n"
    assert "nothing waits" in aiosrun("inbox").stdout


def test_reject_compensates(aiosrun: Runner, tmp_path: Path,
                            store: str) -> None:
    workspace(tmp_path, store, gated=GATED)
    aiosrun("apply")
    _, run = run_json(aiosrun, "run", "gated")
    assert (tmp_path / "invoice.txt").exists()
    code, final = run_json(aiosrun, "reject", run["id"], "review", "--comment", "wrong amount")
    assert code == 1 and final["status"] == "compensated"
    assert not (tmp_path / "invoice.txt").exists()
    assert final["error"]["class"] == "rejected" and "wrong amount" in final["error"]["message"]
    again = aiosrun("approve", run["id"])
    assert again.returncode == 1 and "0 open gates" in again.stderr


def test_gate_timeouts(aiosrun: Runner, tmp_path: Path) -> None:
    for on_timeout, expected in [("approve", "succeeded"), ("reject", "compensated"),
                                 ("escalate", "waiting")]:
        root = tmp_path / on_timeout
        root.mkdir()
        text = GATED.replace("message: Send the invoice?",
                             f"message: Send the invoice?\n      timeout: 1h\n"
                             f"      on_timeout: {on_timeout}")
        workspace(root, gated=text)
        aiosrun("apply", env={"AIOS_WORKSPACE": str(root)})
        env = {"AIOS_WORKSPACE": str(root)}
        _, run = run_json(aiosrun, "run", "gated", env=env)
        assert run["waiting"]["timeout_at"]
        early = {**env, "AIOS_NOW": "2000-01-01T00:00:00Z"}
        _, still = run_json(aiosrun, "resume", run["id"], env=early)
        assert still["status"] == "waiting"
        later = {**env, "AIOS_NOW": "2100-01-01T00:00:00Z"}
        _, final = run_json(aiosrun, "resume", run["id"], env=later)
        assert final["status"] == expected, on_timeout
        if on_timeout == "escalate":
            assert final["waiting"]["kind"] == "escalation"
            code, approved = run_json(aiosrun, "approve", run["id"], env=later)
            assert code == 0 and approved["status"] == "succeeded"


def test_policy_requires_approval_for_matching_actions(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, gated=GATED.replace("  - id: review\n    gate:\n      message: Send the "
                                            "invoice?\n      show: ${{ steps.invoice.outputs }}\n",
                                            "").replace("${{ steps.review.outputs.decision }}: "
                                                        "${{ steps.review.outputs.comment }}",
                                                        "auto"))
    (tmp_path / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n"
                                        "policy:\n  require_approval: ['files.app*']\n")
    aiosrun("apply")
    code, run = run_json(aiosrun, "run", "gated")
    assert code == 3 and run["waiting"]["id"] == "send#approval"
    assert run["waiting"]["show"] == {"action": "files.append",
                                      "with": {"path": "sent.txt", "line": "sent (auto)"}}
    assert not (tmp_path / "sent.txt").exists()
    code, final = run_json(aiosrun, "approve", run["id"], "send#approval")
    assert code == 0 and final["status"] == "succeeded"
    assert (tmp_path / "sent.txt").read_text() == "sent (auto)\n"


FLAKY = """apiVersion: aiosrun/v1
kind: Playbook
name: flaky
inputs:
  order: {type: string, default: A-1}
steps:
  - id: charge
    uses: files.write
    with: {path: charge.txt, content: "${{ inputs.order }}"}
    compensate: {uses: files.delete, with: {path: charge.txt}}
  - id: check
    uses: debug.fail
    with: {times: TIMES, error: ERROR, value: checked}
    retry: {max_attempts: 3, initial_delay: 10ms}
    escalate: {after_attempts: 2, message: "Order ${{ inputs.order }} needs a look"}
  - id: after
    set: {got: "${{ steps.check.outputs.value }}"}
outputs:
  got: ${{ steps.after.outputs.got }}
"""


def flaky(times: int, error: str = "transient") -> str:
    return FLAKY.replace("TIMES", str(times)).replace("ERROR", error)


def test_escalation_lists_and_resolves(aiosrun: Runner, tmp_path: Path,
                                       store: str) -> None:
    workspace(tmp_path, store, flaky=flaky(2))
    aiosrun("apply")
    code, run = run_json(aiosrun, "run", "flaky")
    assert code == 3
    waiting = run["waiting"]
    assert waiting["kind"] == "escalation" and waiting["step"] == "check"
    assert waiting["attempts"] == 2 and waiting["error_class"] == "transient"
    assert waiting["message"].startswith("Order A-1 needs a look (transient:")
    assert waiting["args"] == {"times": 2, "error": "transient", "value": "checked"}
    inbox = json.loads(aiosrun("inbox", "--format", "json").stdout)
    assert inbox[0]["inputs"] == {"order": "A-1"}
    assert f"aiosrun resolve {run['id']} check --retry" in inbox[0]["commands"]
    code, final = run_json(aiosrun, "resolve", run["id"], "check", "--retry")
    assert code == 0 and final["outputs"] == {"got": "checked"}


def test_resolve_skip_and_abort(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, flaky=flaky(9))
    aiosrun("apply")
    _, first = run_json(aiosrun, "run", "flaky")
    code, skipped = run_json(aiosrun, "resolve", first["id"], "check", "--skip", "--outputs",
                             '{"value": "by hand"}')
    assert code == 0 and skipped["outputs"] == {"got": "by hand"}
    _, second = run_json(aiosrun, "run", "flaky", "-i", "order=B-2")
    code, aborted = run_json(aiosrun, "resolve", second["id"], "check", "--abort")
    assert code == 1 and aborted["status"] == "compensated"
    assert not (tmp_path / "charge.txt").exists()
    bad = aiosrun("resolve", second["id"], "check", "--retry")
    assert bad.returncode == 1 and "no open escalation" in bad.stderr
    usage = aiosrun("resolve", second["id"], "check")
    assert usage.returncode == 2


def test_needs_human_escalates_without_configuration(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, flaky=flaky(1, "needs_human").replace(
        "    escalate: {after_attempts: 2, message: \"Order ${{ inputs.order }} needs a "
        "look\"}\n", ""))
    aiosrun("apply")
    code, run = run_json(aiosrun, "run", "flaky")
    assert code == 3 and run["waiting"]["error_class"] == "needs_human"
    assert run["waiting"]["attempts"] == 1


SIBLINGS = """apiVersion: aiosrun/v1
kind: Playbook
name: siblings
steps:
  - id: both
    parallel:
      steps:
        - id: a
          gate: {message: "A?", timeout: 1m, on_timeout: escalate}
        - id: b
          gate: {message: "B?"}
        - id: c
          uses: debug.fail
          with: {times: 5, error: permanent}
          escalate: {after_attempts: 1}
outputs:
  a: ${{ steps.both.outputs.a }}
"""


def test_waiting_siblings_stay_in_the_inbox_after_one_is_settled(aiosrun: Runner,
                                                                 tmp_path: Path) -> None:
    workspace(tmp_path, siblings=SIBLINGS)
    aiosrun("apply")
    code, run = run_json(aiosrun, "run", "siblings")
    assert code == 3
    later = {"AIOS_NOW": "2999-01-01T00:00:00Z"}
    assert aiosrun("resume", "--all", env=later).returncode == 0  # a's timeout escalates it

    def inbox() -> dict[str, list[str]]:
        listed = json.loads(aiosrun("inbox", "--format", "json").stdout)
        return {item["id"]: item["commands"] for item in listed}

    assert list(inbox()) == ["both/a", "both/b", "both/c"]
    assert f"aiosrun resolve {run['id']} both/a --retry|--skip|--abort" in inbox()["both/a"]
    code, after_a = run_json(aiosrun, "resolve", run["id"], "both/a", "--skip", "--outputs",
                             '{"decision": "by hand"}')
    assert code == 3 and after_a["status"] == "waiting"
    assert list(inbox()) == ["both/b", "both/c"]
    code, after_b = run_json(aiosrun, "approve", run["id"], "both/b")
    assert code == 3 and after_b["status"] == "waiting"
    assert [r["status"] for r in json.loads(aiosrun("runs", "--format", "json").stdout)] == [
        "waiting"]
    assert list(inbox()) == ["both/c"]
    code, final = run_json(aiosrun, "resolve", run["id"], "both/c", "--skip")
    assert code == 0 and final["outputs"] == {"a": {"decision": "by hand"}}
