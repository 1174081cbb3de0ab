"""The read commands (``status``, ``runs``, ``inbox``) import only what they use: not trio,
the coordinator, the playbook checks (jsonschema, lark), the adapters' HTTP stack or the
memory's numpy. Each runs in its own interpreter, which reports what it had loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Runner
from .test_cli_runs import workspace

GATED = """apiVersion: aiosrun/v1
kind: Playbook
name: gated
steps:
  - {id: first, set: {v: 1}}
  - {id: ask, gate: {message: "Go?"}}
"""
HEAVY = ("trio", "jsonschema", "lark", "numpy", "httpx", "pydantic", "openai", "tantivy",
         "usearch", "ruamel", "aiosrun.runtime.engine", "aiosrun.runtime.coordinator",
         "aiosrun.dsl.check", "aiosrun.dsl.expressions", "aiosrun.runtime.registry")
REPORT = """
import json, sys
from aiosrun.runtime.cli import main
sys.argv = ["aiosrun", *sys.argv[1:]]
try:
    main()
finally:
    print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def loaded(root: Path, *args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", REPORT, "-w", str(root), *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode in (0, 3), done.stderr
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("command", [("runs",), ("inbox",), ("status", "RUN"),
                                     ("runs", "--format", "json")])
def test_a_read_command_imports_only_what_it_uses(aiosrun: Runner, tmp_path: Path,
                                                  command: tuple[str, ...]) -> None:
    workspace(tmp_path, gated=GATED)
    assert aiosrun("apply").returncode == 0
    done = aiosrun("run", "gated", "--format", "json")
    assert done.returncode == 3, done.stderr
    run = json.loads(done.stdout)["id"]
    args = tuple(run if arg == "RUN" else arg for arg in command)
    modules = loaded(tmp_path, *args)
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or
                   any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == []
    assert "aiosrun.runtime.reading" in modules  # the command did its work


def test_a_changed_aios_yaml_is_checked_again(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, gated=GATED)
    assert aiosrun("apply").returncode == 0
    assert aiosrun("runs").returncode == 0
    (tmp_path / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n"
                                        "policy: {limits: {max_concurrent_runs: -3}}\n")
    done = aiosrun("runs")
    assert done.returncode == 1 and "aios.yaml" in done.stderr, done.stderr


def test_runs_lists_the_latest_twenty_unless_asked_for_more(aiosrun: Runner, tmp_path: Path,
                                                            store: str) -> None:
    from aiosrun.runtime.log.eventlog import NewEvent
    from aiosrun.runtime.workspace import Workspace

    workspace(tmp_path, store, gated=GATED)
    with Workspace(tmp_path) as ws:
        ws.log.append_many([NewEvent("RunStarted", {"playbook": "gated"}, run=f"r{i:02d}")
                            for i in range(25)])

    def listed(*args: str) -> list[str]:
        done = aiosrun("runs", *args)
        assert done.returncode == 0, done.stderr
        return [line.split()[0] for line in done.stdout.splitlines()]

    every = [f"r{i:02d}" for i in range(25)]
    assert listed() == every[5:]  # the latest, newest last
    assert listed("-L", "3") == every[22:]
    assert listed("--all") == every
    assert [r["id"] for r in json.loads(aiosrun("runs", "--limit", "2", "--format",
                                                "json").stdout)] == every[23:]
    assert aiosrun("runs", "--limit", "0").returncode == 2
