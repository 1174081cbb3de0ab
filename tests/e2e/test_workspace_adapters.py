"""The adapter author's example, loaded from a workspace's adapters/ folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .conftest import Runner
from .test_cli_runs import workspace

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "adapters" / "contacts.py"
PLAYBOOK = """apiVersion: aiosrun/v1
kind: Playbook
name: crm
steps:
  - id: add
    uses: contacts.add
    with: {email: Ada@Example.com, name: Ada}
  - id: find
    uses: contacts.find
    with: {email: ada@example.com}
outputs:
  name: ${{ steps.find.outputs.name }}
"""


def test_example_adapter_is_listed_checked_and_run(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, crm=PLAYBOOK)
    (tmp_path / "adapters").mkdir()
    shutil.copy(EXAMPLE, tmp_path / "adapters" / "contacts.py")
    listed = json.loads(aiosrun("adapters", "contacts", "--format", "json").stdout)
    assert set(listed["contacts"]["actions"]) == {"add", "remove", "find"}
    assert listed["contacts"]["actions"]["add"]["compensation"] == "contacts.remove"
    assert "contacts.add(email, name)" in aiosrun("adapters").stdout
    (tmp_path / "playbooks" / "bad.yaml").write_text(
        PLAYBOOK.replace("name: crm", "name: bad").replace("{email: ada@example.com}",
                                                           "{mail: ada@example.com}"))
    done = aiosrun("validate")
    assert done.returncode == 1
    assert "unknown argument 'mail' for contacts.find; did you mean 'email'?" in done.stdout
    (tmp_path / "playbooks" / "bad.yaml").unlink()
    assert aiosrun("apply").returncode == 0
    run = aiosrun("run", "crm", "--format", "json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["outputs"] == {"name": "Ada"}


def test_a_broken_workspace_adapter_is_reported(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path)
    (tmp_path / "adapters").mkdir()
    (tmp_path / "adapters" / "broken.py").write_text("raise RuntimeError('oops')\n")
    done = aiosrun("adapters")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "broken.py:1: cannot load adapter: RuntimeError: oops" in done.stderr
