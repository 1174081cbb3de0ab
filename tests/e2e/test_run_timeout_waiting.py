"""A playbook's policy.timeout also ends a run that waits (at a gate, for an event): the
recovery that `resume --all` and `serve` do finds it due once the deadline has passed (on
either store)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from .conftest import Runner
from .test_cli_runs import workspace

GATED = """\
apiVersion: aiosrun/v1
kind: Playbook
name: gated
policy: {timeout: 1h}
steps:
  - id: ask
    gate: {message: "Go?"}
"""


def test_a_waiting_run_past_its_policy_timeout_fails_naming_the_limit(
        aiosrun: Runner, tmp_path: Path, store: str) -> None:
    workspace(tmp_path, store, gated=GATED)
    assert aiosrun("apply").returncode == 0
    run = json.loads(aiosrun("run", "gated", "--format", "json").stdout)
    assert run["status"] == "waiting"
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)
    early = aiosrun("resume", "--all", "--format", "json",
                    env={"AIOS_NOW": soon.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert json.loads(early.stdout) == []  # not due yet: nothing resumed
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    done = aiosrun("resume", "--all", "--format", "json",
                   env={"AIOS_NOW": later.strftime("%Y-%m-%dT%H:%M:%SZ")})
    (ended,) = json.loads(done.stdout)
    assert ended["id"] == run["id"] and ended["status"] in ("failed", "compensated")
    assert ended["error"]["class"] == "timeout"
    assert "policy.timeout" in ended["error"]["message"]
