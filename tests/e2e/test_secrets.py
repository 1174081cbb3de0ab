"""Secrets reach adapters, and never .aios/, the terminal or an error message."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Runner
from .test_cli_runs import workspace

FROM_FILE = "s3cr3t-from-dotenv-91a7"
FROM_ENV = "tok-from-environment-5c2e"
PLAYBOOK = """apiVersion: aiosrun/v1
kind: Playbook
name: secretive
memory: [operations]
steps:
  - id: use
    uses: files.write
    with: {path: delivered.txt, content: "${{ secrets.API_KEY }}|${{ secrets.TOKEN }}"}
  - id: echo
    uses: debug.echo
    with: {value: "key=${{ secrets.API_KEY }}"}
  - id: note
    uses: memory.remember
    with: {domain: operations, text: "token ${{ secrets.TOKEN }}",
           metadata: {key: "${{ secrets.API_KEY }}"}}
  - id: ask
    gate:
      message: "Use ${{ secrets.TOKEN }} for ${{ steps.echo.outputs.value }}?"
      show: {token: "${{ secrets.TOKEN }}"}
  - id: broken
    uses: files.read
    with: {path: "missing-${{ secrets.API_KEY }}.txt"}
outputs:
  leaked: ${{ secrets.API_KEY }}
"""


def test_secrets_are_masked_everywhere(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, secretive=PLAYBOOK)
    (tmp_path / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n"
                                        "secrets:\n  env: [TOKEN]\n")
    (tmp_path / ".env").write_text(f"API_KEY={FROM_FILE}\n")
    env = {"TOKEN": FROM_ENV}
    printed = []
    aiosrun("apply", env=env)
    run = aiosrun("run", "secretive", "--format", "json", env=env)
    printed.append(run.stdout + run.stderr)
    run_id = json.loads(run.stdout)["id"]
    assert json.loads(run.stdout)["waiting"]["message"] == "Use *** for key=***?"
    for args in (["inbox"], ["status", run_id, "--format", "json"], ["timeline", run_id],
                 ["approve", run_id, "--comment", f"fine, {FROM_ENV}"]):
        done = aiosrun(*args, env=env)
        printed.append(done.stdout + done.stderr)
    final = aiosrun("status", run_id, "--format", "json", env=env)
    state = json.loads(final.stdout)
    assert state["status"] == "compensated"
    assert "missing-***.txt" in state["error"]["message"]
    # adapters received the real values
    assert (tmp_path / "delivered.txt").read_text() == f"{FROM_FILE}|{FROM_ENV}"
    for secret in (FROM_FILE, FROM_ENV):
        for output in printed:
            assert secret not in output
        for path in (tmp_path / ".aios").rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
