"""An event whose payload a triggered playbook refuses is visible: emit says so and why,
the inbox lists it until dismissed, serve logs it (on either store)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .conftest import Runner, serve_is_up
from .test_cli_runs import workspace

STRICT = """\
apiVersion: aiosrun/v1
kind: Playbook
name: strict
on: {event: lead.created}
inputs:
  email: {type: string}
  score: {type: integer}
steps:
  - id: note
    uses: debug.echo
    with: {value: "${{ inputs.email }}"}
"""


def test_a_rejected_event_is_said_listed_and_dismissed(aiosrun: Runner, tmp_path: Path,
                                                       store: str) -> None:
    workspace(tmp_path, store, strict=STRICT)
    assert aiosrun("apply").returncode == 0
    emitted = aiosrun("emit", "lead.created", "--data", '{"email": "a@example.com", '
                      '"score": "high"}')
    assert emitted.returncode == 1
    assert "playbook strict rejected it: input 'score'" in emitted.stderr
    assert "is not of type 'integer'" in emitted.stderr
    as_json = aiosrun("emit", "lead.created", "--data", '{"score": 1}', "--format", "json")
    assert json.loads(as_json.stdout)["rejected"] == [
        {"playbook": "strict", "error": "missing input 'email'"}]
    listed = json.loads(aiosrun("inbox", "--format", "json").stdout)
    assert [(i["kind"], i["playbook"], i["run"]) for i in listed] == [
        ("rejected_event", "strict", None)] * 2
    first = listed[0]["id"]
    assert listed[0]["commands"] == [f"aiosrun inbox --dismiss {first}"]
    text = aiosrun("inbox").stdout
    assert f"rejected_event {first}: event lead.created" in text
    assert aiosrun("inbox", "--dismiss", first).returncode == 0
    assert [i["id"] for i in json.loads(aiosrun("inbox", "--format", "json").stdout)] == [
        listed[1]["id"]]
    again = aiosrun("inbox", "--dismiss", first)
    assert again.returncode == 1 and f"no rejected event '{first}'" in again.stderr
    assert aiosrun("runs", "--format", "json").stdout.strip() == "[]"


def test_serve_logs_a_rejected_event(aiosrun: Runner, tmp_path: Path, store: str) -> None:
    workspace(tmp_path, store, strict=STRICT)
    assert aiosrun("apply").returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "AIOS_WORKSPACE"}
    server = subprocess.Popen(
        [sys.executable, "-m", "aiosrun.runtime", "serve", "--interval", "0.1"],
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        serve_is_up(tmp_path)
        emitted = aiosrun("emit", "lead.created", "--data", '{"email": 5}')
        assert emitted.returncode == 0 and "serve dispatches it" in emitted.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = json.loads(aiosrun("inbox", "--format", "json").stdout)
            if listed:
                break
            time.sleep(0.1)
        assert [i["kind"] for i in listed] == ["rejected_event"]
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert "event lead.created (seq" in err and "rejected by strict: input 'email'" in err
