"""Two processes emitting and dispatching at once: every triggered run starts once, every
wait is woken once, and an event id is recorded once (real processes, one workspace, on
either store)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from .conftest import log_records
from .test_cli_runs import workspace

TRIGGERED = """\
apiVersion: aiosrun/v1
kind: Playbook
name: on-signup
on: {event: customer.signed_up}
inputs:
  email: {type: string}
steps:
  - id: greet
    uses: files.append
    with: {path: greeted.txt, line: "${{ inputs.email }}"}
"""

WAITER = """\
apiVersion: aiosrun/v1
kind: Playbook
name: waiter
steps:
  - id: paid
    wait: {event: invoice.paid}
  - id: after
    uses: files.append
    with: {path: paid.txt, line: "woken"}
"""


def command(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "aiosrun.runtime", "--workspace", str(root), *args]


def records(root: Path) -> list[dict[str, object]]:
    return [r.to_json() for r in log_records(root)]


def test_racing_dispatchers_start_each_run_and_wake_each_wait_once(
        tmp_path: Path, store: str, request: pytest.FixtureRequest) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AIOS_WORKSPACE"}
    rounds = 2 if store else 4
    for number in range(rounds):
        (tmp_path / f"round{number}").mkdir()
        if store and number:  # each round's workspace: a database of its own
            url = request.getfixturevalue("postgres_server").database()
            store = f'store: {{url: "{url}", lease_timeout: 3s}}\n'
        root = workspace(tmp_path / f"round{number}", store, **{"on-signup": TRIGGERED,
                                                               "waiter": WAITER})
        assert subprocess.run(command(root, "apply"), env=env, capture_output=True,
                              timeout=60).returncode == 0
        assert subprocess.run(command(root, "run", "waiter"), env=env, capture_output=True,
                              timeout=60).returncode == 3
        racers = [subprocess.Popen(command(root, "emit", "customer.signed_up", "--data",
                                           f'{{"email": "p{i}@example.com"}}'),
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                  for i in range(2)]
        racers += [subprocess.Popen(command(root, "emit", "invoice.paid", "--id", "pay-1"),
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                   for _ in range(2)]
        for racer in racers:
            out, err = racer.communicate(timeout=120)
            assert racer.returncode in (0, 3), (racer.returncode, out, err)
        found = records(root)
        assert [r["seq"] for r in found] == list(range(1, len(found) + 1))
        started = Counter(r["run"] for r in found if r["type"] == "RunStarted")
        assert set(started.values()) == {1}, started
        assert len(started) == 3  # the waiter and one run per signup
        woken = [r for r in found if r["type"] == "WaitSatisfied"]
        assert len(woken) == 1
        assert len([r for r in found if r["type"] == "EventEmitted"
                    and r["data"]["event"] == "invoice.paid"]) == 1
        assert sorted((root / "greeted.txt").read_text().splitlines()) == [
            "p0@example.com", "p1@example.com"]
        assert (root / "paid.txt").read_text() == "woken\n"
