"""Events, waits, timers and `aiosrun serve`."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support.leases import lease_held

from .conftest import Runner, _aiosrun_command
from .test_cli_gates import run_json
from .test_cli_runs import workspace

ONBOARD = """apiVersion: aiosrun/v1
kind: Playbook
name: onboard
on:
  event: customer.signed_up
  if: ${{ event.customer.plan != 'free' }}
inputs:
  customer: {type: object, required: [email]}
steps:
  - id: welcome
    uses: files.append
    with: {path: welcomed.txt, line: "${{ inputs.customer.email }} via ${{ event.name }}"}
"""
WAITER = """apiVersion: aiosrun/v1
kind: Playbook
name: waiter
inputs:
  invoice: {type: string}
steps:
  - id: paid
    wait:
      event: invoice.paid
      match: ${{ event.invoice == inputs.invoice }}
  - id: thank
    uses: files.append
    with: {path: paid.txt, line: "${{ inputs.invoice }} paid ${{ steps.paid.outputs.amount }}"}
"""
SIGNUP = '{"customer": {"email": "ada@example.com", "plan": "pro"}}'


def runs(aiosrun: Runner, env: dict[str, str] | None = None) -> list[dict[str, str]]:
    return json.loads(aiosrun("runs", "--format", "json", env=env).stdout)


def test_an_event_starts_its_playbook_once(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, onboard=ONBOARD)
    aiosrun("apply")
    code, result = run_json(aiosrun, "emit", "customer.signed_up", "--data", SIGNUP)
    assert code == 0, result
    (run,) = result["runs"]
    assert run["id"] == f"ev{result['seq']}-onboard" and run["status"] == "succeeded"
    assert (tmp_path / "welcomed.txt").read_text() == "ada@example.com via customer.signed_up\n"
    code, free = run_json(aiosrun, "emit", "customer.signed_up", "--data",
                          '{"customer": {"email": "f@example.com", "plan": "free"}}')
    assert code == 0 and free["runs"] == []  # `if:` said no
    assert aiosrun("resume", "--all").returncode == 0  # nothing left to dispatch
    assert len(runs(aiosrun)) == 1
    (tmp_path / "data.json").write_text('{"customer": {"email": "bo@example.com"}}')
    assert aiosrun("emit", "customer.signed_up", "--data", "@data.json").returncode == 0
    assert len(runs(aiosrun)) == 2
    assert aiosrun("emit", "not a name").returncode == 2


def test_wait_is_woken_by_its_matching_event(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, waiter=WAITER)
    aiosrun("apply")
    code, first = run_json(aiosrun, "run", "waiter", "-i", "invoice=INV-1")
    assert code == 3 and first["waiting"]["kind"] == "wait"
    code, other = run_json(aiosrun, "run", "waiter", "-i", "invoice=INV-2")
    code, emitted = run_json(aiosrun, "emit", "invoice.paid", "--data",
                             '{"invoice": "INV-2", "amount": 49}')
    assert code == 0
    statuses = {r["id"]: r["status"] for r in runs(aiosrun)}
    assert statuses == {first["id"]: "waiting", other["id"]: "succeeded"}, (
        emitted, aiosrun("status", other["id"], "--format", "json").stdout)
    assert (tmp_path / "paid.txt").read_text() == "INV-2 paid 49\n"
    status = json.loads(aiosrun("status", other["id"], "--format", "json").stdout)
    paid = next(step for step in status["steps"] if step["id"] == "paid")
    assert paid["outputs"] == {"invoice": "INV-2", "amount": 49, "name": "invoice.paid"}
    tree = json.loads(aiosrun("timeline", other["id"], "--format", "json").stdout)
    (woken,) = [row for row in tree["events"] if row["type"] == "WaitSatisfied"]
    assert woken["event"] == {"event": "invoice.paid", "seq": emitted["seq"]}
    assert f"event invoice.paid (seq {emitted['seq']})" in aiosrun("timeline", other["id"]).stdout


def test_timer_waits_fire_when_due(aiosrun: Runner, tmp_path: Path) -> None:
    text = ("apiVersion: aiosrun/v1\nkind: Playbook\nname: later\nsteps:\n"
            "  - id: pause\n    wait: {duration: 2h}\n"
            "  - id: done\n    uses: files.append\n    with: {path: done.txt, line: done}\n"
            "  - id: event\n    wait: {event: never.happens, timeout: 1h}\n")
    workspace(tmp_path, later=text)
    aiosrun("apply")
    code, run = run_json(aiosrun, "run", "later")
    assert code == 3 and run["waiting"]["due_at"]
    early = aiosrun("resume", "--all", env={"AIOS_NOW": "2000-01-01T00:00:00Z"})
    assert early.returncode == 0 and not (tmp_path / "done.txt").exists()
    late = {"AIOS_NOW": "2999-01-01T00:00:00Z"}
    assert aiosrun("resume", "--all", env=late).returncode == 0
    assert (tmp_path / "done.txt").read_text() == "done\n"
    status = json.loads(aiosrun("status", run["id"], "--format", "json", env=late).stdout)
    assert status["status"] == "waiting"  # the event wait has just started its hour
    aiosrun("resume", "--all", env={"AIOS_NOW": "3999-01-01T00:00:00Z"})
    status = json.loads(aiosrun("status", run["id"], "--format", "json").stdout)
    assert status["status"] == "compensated"
    assert status["error"]["class"] == "timeout"


def test_an_emit_step_triggers_another_playbook(aiosrun: Runner, tmp_path: Path) -> None:
    signup = ("apiVersion: aiosrun/v1\nkind: Playbook\nname: signup\nsteps:\n"
              "  - id: announce\n    emit:\n      event: customer.signed_up\n"
              "      data: {customer: {email: cy@example.com, plan: pro}}\n")
    workspace(tmp_path, onboard=ONBOARD, signup=signup)
    aiosrun("apply")
    code, run = run_json(aiosrun, "run", "signup")
    assert code == 0
    assert (tmp_path / "welcomed.txt").read_text() == "cy@example.com via customer.signed_up\n"
    seq = run["steps"][0]["outputs"]["seq"]
    assert f"ev{seq}-onboard" in {r["id"] for r in runs(aiosrun)}


def test_a_crash_between_event_and_run_starts_it_once(aiosrun: Runner, tmp_path: Path,
                                                      store: str) -> None:
    from aiosrun.runtime.coordinator.dispatch import emit
    from aiosrun.runtime.coordinator.runs import start_or_load
    from aiosrun.runtime.workspace import Workspace

    workspace(tmp_path, store, onboard=ONBOARD)
    aiosrun("apply")
    with Workspace(tmp_path) as ws:  # what a killed process leaves: event, run started
        record = emit(ws, "customer.signed_up", json.loads(SIGNUP), {"test": True})
        start_or_load(ws, "onboard", {"customer": json.loads(SIGNUP)["customer"]},
                      run_id=f"ev{record.seq}-onboard")
    assert aiosrun("resume", "--all").returncode == 0
    assert [r["status"] for r in runs(aiosrun)] == ["succeeded"]
    assert (tmp_path / "welcomed.txt").read_text().count("ada@example.com") == 1


def test_serve_once_fires_schedules_and_pending_events(aiosrun: Runner, tmp_path: Path) -> None:
    weekly = ("apiVersion: aiosrun/v1\nkind: Playbook\nname: weekly\non:\n"
              "  schedule: '0 8 * * 1'\nsteps:\n  - id: post\n    uses: files.append\n"
              "    with: {path: posts.txt, line: monday}\n")
    workspace(tmp_path, weekly=weekly, onboard=ONBOARD)
    aiosrun("apply")
    fd = os.open(tmp_path / ".aios" / "serve.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as if serve were running: emit only records
    try:
        held = aiosrun("emit", "customer.signed_up", "--data", SIGNUP)
        assert held.returncode == 0 and "serve dispatches it" in held.stderr
        assert aiosrun("serve", "--once").returncode == 1  # one serve per workspace
    finally:
        os.close(fd)
    monday = {"AIOS_NOW": "2026-11-30T08:00:00.400Z"}
    done = aiosrun("serve", "--once", env=monday)
    assert done.returncode == 0, done.stderr
    assert "scheduled (0 8 * * 1): succeeded" in done.stderr
    assert (tmp_path / "posts.txt").read_text() == "monday\n"
    assert (tmp_path / "welcomed.txt").exists()
    aiosrun("serve", "--once", env=monday)
    ids = {r["id"] for r in runs(aiosrun)}
    assert "cron-weekly-20261130T0800Z" in ids and len(ids) == 2  # once per slot


def test_serve_stops_cleanly_on_sigterm(aiosrun: Runner, tmp_path: Path) -> None:
    slow = ("apiVersion: aiosrun/v1\nkind: Playbook\nname: slow\non: {event: go}\nsteps:\n"
            + "".join(f"  - id: s{i}\n    uses: debug.sleep\n    with: {{seconds: 0.4}}\n"
                      for i in range(10)))  # 4 s: SIGTERM lands mid-run even on a busy machine
    workspace(tmp_path, slow=slow)
    aiosrun("apply")
    server = subprocess.Popen([*_aiosrun_command(), "--workspace", str(tmp_path), "serve",
                               "--interval", "0.1"], stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # serve is up and holds its lock
        assert aiosrun("emit", "go").returncode == 0
        deadline = time.time() + 20
        while time.time() < deadline and not lease_held(tmp_path):
            time.sleep(0.05)
        time.sleep(0.6)
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, err
    assert "SIGTERM: stopping" in err and "stopped" in err
    (run,) = runs(aiosrun)
    assert run["status"] == "running", err  # stopped between steps, resumable
    done = aiosrun("resume", run["id"])
    assert done.returncode == 0 and "succeeded" in done.stdout


def test_timeline_shows_causes_as_a_tree(aiosrun: Runner, tmp_path: Path) -> None:
    parent = ("apiVersion: aiosrun/v1\nkind: Playbook\nname: parent\non: {event: go}\n"
              "steps:\n  - id: ask\n    gate: {message: 'Go on?'}\n"
              "  - id: sub\n    call: {playbook: child}\n")
    child = ("apiVersion: aiosrun/v1\nkind: Playbook\nname: child\nsteps:\n"
             "  - id: work\n    uses: debug.echo\n    with: {value: 1}\n")
    workspace(tmp_path, parent=parent, child=child)
    aiosrun("apply")
    code, emitted = run_json(aiosrun, "emit", "go")
    assert code == 3
    run_id = emitted["runs"][0]["id"]
    assert aiosrun("approve", run_id, "--comment", "yes").returncode == 0
    tree = json.loads(aiosrun("timeline", run_id, "--format", "json").stdout)
    assert tree["started_by"] == {"kind": "event", "event": "go", "seq": emitted["seq"]}
    decided = next(r for r in tree["events"] if r["type"] == "GateDecided")
    assert (decided["decision"], decided["by"], decided["comment"]) == ("approved", "operator",
                                                                        "yes")
    (sub,) = tree["children"]
    assert sub["run"] == f"{run_id}.sub"
    assert sub["started_by"]["kind"] == "call" and sub["started_by"]["step"] == "sub"
    assert [r["type"] for r in sub["events"]][-1] == "RunSucceeded"
    text = aiosrun("timeline", run_id).stdout
    assert f"run {run_id} started by event go (seq {emitted['seq']})" in text
    assert "GateDecided" in text and "approved by operator (yes)" in text
    assert f"run {run_id}.sub started by {run_id} step sub" in text
