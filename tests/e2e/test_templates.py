"""The three templates as a new operator meets them: ``aiosrun init``, ``apply``, ``run
NAME --inputs examples/NAME.yaml``, approve, offline. Also: a rejected gate compensates,
and a SIGKILL in the middle followed by ``resume`` doubles no email, invoice or payment."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    Runner,
    _aiosrun_command,
    journal_entries,
    log_holds,
    log_records,
    once_the_lease_lapses,
)

ONBOARD = ("run", "customer-onboarding", "--inputs", "examples/customer-onboarding.yaml",
           "--format", "json")
CADENCE = ("run", "content-cadence", "--inputs", "examples/content-cadence.yaml",
           "--format", "json")
RECONCILE = ("run", "billing-reconciliation", "--inputs",
             "examples/billing-reconciliation.yaml", "--format", "json")


def init_workspace(aiosrun: Runner, tmp_path: Path, store: str = "") -> Path:
    created = aiosrun("init", "ws", "--no-git")
    assert created.returncode == 0, created.stderr
    root = tmp_path / "ws"
    if store:
        with (root / "aios.yaml").open("a") as settings:
            settings.write(store)
    applied = aiosrun("apply", cwd=root)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    return root


@pytest.fixture
def ws(aiosrun: Runner, tmp_path: Path) -> Path:
    """A new workspace from ``aiosrun init`` on the JSONL store."""
    return init_workspace(aiosrun, tmp_path)


@pytest.fixture
def either(aiosrun: Runner, tmp_path: Path, store: str) -> Path:
    """The same on each store (the ``store`` fixture)."""
    return init_workspace(aiosrun, tmp_path, store)


def ledger(root: Path) -> list[dict[str, Any]]:
    return journal_entries(root, "billing/ledger")


def outbox(root: Path) -> list[Path]:
    folder = root / ".aios" / "outbox"
    return sorted(folder.glob("*.eml")) if folder.exists() else []


def run_object(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return json.loads(done.stdout)


def cassette_usage(root: Path, alias: str, step: str) -> tuple[int, int]:
    for line in (root / "cassettes" / f"{alias}.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry.get("match", {}).get("step") == step:
            return entry["usage"]["input_tokens"], entry["usage"]["output_tokens"]
    raise AssertionError(f"no cassette entry for {step}")


def test_init_creates_a_playbook_repository(aiosrun: Runner, tmp_path: Path) -> None:
    done = aiosrun("init", "shop")
    assert done.returncode == 0, done.stderr
    root = tmp_path / "shop"
    for name in ("aios.yaml", ".gitignore", ".pre-commit-config.yaml",
                 "playbooks/customer-onboarding.yaml", "playbooks/content-cadence.yaml",
                 "playbooks/billing-reconciliation.yaml", "examples/customer-onboarding.yaml",
                 "examples/content-cadence.yaml", "examples/billing-reconciliation.yaml",
                 "cassettes/small.jsonl", "cassettes/large.jsonl", "knowledge/policies.md",
                 "schemas/playbook.schema.json", "schemas/workspace.schema.json"):
        assert (root / name).is_file(), name
    assert ".aios/" in (root / ".gitignore").read_text().splitlines()
    assert "aiosrun validate" in (root / ".pre-commit-config.yaml").read_text()
    printed = aiosrun("schema", "playbook")
    assert json.loads((root / "schemas" / "playbook.schema.json").read_text()) == \
        json.loads(printed.stdout)
    assert "provider: replay" in (root / "aios.yaml").read_text()
    assert "base_url: http://localhost:11434/v1" in (root / "aios.yaml").read_text()
    valid = aiosrun("validate", cwd=root)
    assert valid.returncode == 0, valid.stdout
    if shutil.which("git"):
        assert (root / ".git").is_dir()
    again = aiosrun("init", "shop")
    assert again.returncode == 1 and "is a workspace already" in again.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / ".gitignore").write_text("keep-me\n")
    kept = aiosrun("init", "mine", "--no-git")
    assert "kept existing .gitignore" in kept.stdout
    assert (tmp_path / "mine" / ".gitignore").read_text() == "keep-me\n"
    assert not (tmp_path / "mine" / ".git").exists()


def test_onboarding_runs_to_its_gate_then_to_the_end(aiosrun: Runner, ws: Path) -> None:
    first = aiosrun(*ONBOARD, cwd=ws)
    assert first.returncode == 3, first.stderr
    run = run_object(first)
    assert run["waiting"]["id"] == "review"
    assert run["waiting"]["kind"] == "gate"
    assert outbox(ws) == [] and ledger(ws) == []  # nothing happens before the approval
    approved = aiosrun("approve", "--format", "json", cwd=ws)
    assert approved.returncode == 0, approved.stderr
    final = run_object(approved)
    assert final["status"] == "succeeded"
    assert final["outputs"]["invoice_id"] == "INV-00001"
    [mail] = outbox(ws)
    text = mail.read_text()
    assert "To: ada@example.com" in text and "Welcome aboard" in text  # the large tier's
    [invoice] = ledger(ws)
    assert invoice["record"]["amount"] == 49 and invoice["record"]["status"] == "open"
    small = cassette_usage(ws, "small", "customer-onboarding/welcome")
    large = cassette_usage(ws, "large", "customer-onboarding/welcome")
    expected = (small[0] * 0.15 + small[1] * 0.60 + large[0] * 2.50 + large[1] * 10.0) / 1e6
    assert final["cost_usd"] == pytest.approx(expected, abs=1e-12)
    found = aiosrun("memory", "search", "ada@example.com", "--domain", "customers",
                    "--format", "json", cwd=ws)
    assert "Ada Lovelace" in json.loads(found.stdout)[0]["text"]


def test_a_rejected_approval_voids_the_invoice(aiosrun: Runner, either: Path) -> None:
    ws = either
    settings = (ws / "aios.yaml").read_text().replace(
        "require_approval: []", "require_approval: [email.send]")
    (ws / "aios.yaml").write_text(settings)
    assert aiosrun(*ONBOARD, cwd=ws).returncode == 3
    at_send = aiosrun("approve", "--format", "json", cwd=ws)  # the email, then billing
    assert at_send.returncode == 3
    assert run_object(at_send)["waiting"]["id"] == "send#approval"
    assert [e["record"]["status"] for e in ledger(ws)] == ["open"]
    rejected = aiosrun("reject", "--comment", "wrong tone", "--format", "json", cwd=ws)
    assert rejected.returncode == 1
    assert run_object(rejected)["status"] == "compensated"
    assert [(e["kind"], e["record"]["status"]) for e in ledger(ws)] == [("invoice", "open"),
                                                                        ("void", "void")]
    assert outbox(ws) == []


def test_content_cadence_to_the_outbox_and_to_an_api(aiosrun: Runner, ws: Path) -> None:
    waiting = aiosrun(*CADENCE, cwd=ws)
    assert waiting.returncode == 3, waiting.stderr
    done = aiosrun("approve", "--format", "json", cwd=ws)
    assert done.returncode == 0, done.stderr
    final = run_object(done)
    steps = {s["id"]: s["status"] for s in final["steps"]}
    assert steps["publish"] == "skipped" and steps["outbox"] == "succeeded"
    [post] = outbox(ws)
    assert "Ready to post: This week" in post.read_text()

    posted: list[tuple[str, dict[str, Any]]] = []

    class Blog(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            posted.append((self.headers.get("Idempotency-Key", ""), body))
            self.send_response(201)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Blog)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        (ws / "aios.yaml").write_text((ws / "aios.yaml").read_text().replace(
            "allow_hosts: []", f"allow_hosts: ['127.0.0.1:{port}']"))
        assert aiosrun(*CADENCE, "-i", f"publish_url=http://127.0.0.1:{port}/posts",
                       cwd=ws).returncode == 3
        assert aiosrun("approve", cwd=ws).returncode == 0
    finally:
        server.shutdown()
        server.server_close()
    assert len(posted) == 1 and posted[0][1]["title"].startswith("This week")
    assert posted[0][0].endswith(":publish")
    assert len(outbox(ws)) == 1  # the second run published instead


def test_reconciliation_records_matches_and_escalates_mismatches(aiosrun: Runner,
                                                                 ws: Path) -> None:
    assert aiosrun(*ONBOARD, cwd=ws).returncode == 3
    assert aiosrun("approve", cwd=ws).returncode == 0  # INV-00001 exists now
    escalated = aiosrun(*RECONCILE, cwd=ws)
    assert escalated.returncode == 3, escalated.stderr
    waiting = run_object(escalated)["waiting"]
    assert waiting["kind"] == "escalation" and waiting["id"] == "match[1]/record"
    assert "BANK-7732" in waiting["message"]
    # the bookkeeper agent matched them offline, from the recorded cassette: a memory search
    # as a tool call, then its answer
    steps = {s["path"]: s for s in run_object(escalated)["steps"]}
    assert steps["bookkeeper/turn-1/memory__search_finances"]["status"] == "succeeded"
    assert [m["invoice_id"] for m in steps["bookkeeper"]["outputs"]["matches"]] == [
        "INV-00001", "INV-00042"]
    payments = [e for e in ledger(ws) if e["kind"] == "payment"]
    assert [p["record"]["invoice_id"] for p in payments] == ["INV-00001"]
    run_id = run_object(escalated)["id"]
    done = aiosrun("resolve", run_id, "match[1]/record", "--skip", "--format", "json", cwd=ws)
    assert done.returncode == 0, done.stderr
    assert run_object(done)["outputs"] == {"payments": 2, "open_invoices_before": 1}
    inbox = aiosrun("inbox", cwd=ws)
    assert "nothing waits" in inbox.stdout


def _kill_when(root: Path, args: tuple[str, ...], marker: str, delay: float) -> None:
    """Start the command, SIGKILL it ``delay`` seconds after ``marker`` reaches the log."""
    process = subprocess.Popen([*_aiosrun_command(), *args], cwd=root,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if log_holds(root, marker):
            break
        time.sleep(0.002)
    time.sleep(delay)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(10)


def _resume(aiosrun: Runner, root: Path, run_id: str) -> dict[str, Any]:
    done = once_the_lease_lapses(lambda: aiosrun("resume", run_id, "--format", "json",
                                                 cwd=root))
    assert done.returncode in (0, 3), done.stderr
    return run_object(done)


def _no_gap(root: Path) -> None:
    seqs = [record.seq for record in log_records(root)]
    assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.parametrize("delay", [0.0, 0.004, 0.012, 0.03])
def test_onboarding_killed_after_the_approval_then_resumed(aiosrun: Runner, ws: Path,
                                                           delay: float) -> None:
    onboarding_killed_after_the_approval(aiosrun, ws, delay)


def test_onboarding_killed_after_the_approval_on_either_store(aiosrun: Runner,
                                                              either: Path) -> None:
    """One kill point of the four above on each store (the crash suite covers more)."""
    onboarding_killed_after_the_approval(aiosrun, either, 0.012)


def onboarding_killed_after_the_approval(aiosrun: Runner, ws: Path, delay: float) -> None:
    run_id = run_object(aiosrun(*ONBOARD, cwd=ws))["id"]
    _kill_when(ws, ("approve", run_id), '"GateDecided"', delay)
    # the approval is in the log; the kill may land before, in or after the effects
    final = _resume(aiosrun, ws, run_id)
    assert final["status"] == "succeeded"
    assert len(outbox(ws)) == 1
    assert [e["kind"] for e in ledger(ws)] == ["invoice"]
    _no_gap(ws)


@pytest.mark.parametrize("delay", [0.0, 0.01])
def test_cadence_killed_after_the_approval_then_resumed(aiosrun: Runner, ws: Path,
                                                        delay: float) -> None:
    run_id = run_object(aiosrun(*CADENCE, cwd=ws))["id"]
    _kill_when(ws, ("approve", run_id), '"GateDecided"', delay)
    assert _resume(aiosrun, ws, run_id)["status"] == "succeeded"
    assert len(outbox(ws)) == 1
    _no_gap(ws)


@pytest.mark.parametrize("delay", [0.0, 0.02])
def test_reconciliation_killed_mid_batch_then_resumed(aiosrun: Runner, ws: Path,
                                                      delay: float) -> None:
    assert aiosrun(*ONBOARD, cwd=ws).returncode == 3
    assert aiosrun("approve", cwd=ws).returncode == 0
    _kill_when(ws, RECONCILE, '"path":"match[0]/record"', delay)
    runs = json.loads(aiosrun("runs", "--format", "json", cwd=ws).stdout)
    run_id = next(r["id"] for r in runs if r["playbook"] == "billing-reconciliation")
    waiting = _resume(aiosrun, ws, run_id)
    assert waiting["status"] == "waiting"  # the mismatch still goes to the operator
    assert [e["record"]["invoice_id"] for e in ledger(ws) if e["kind"] == "payment"] == [
        "INV-00001"]
    _no_gap(ws)
