"""Secrets reach adapters, and never .aios/, the database of a PostgreSQL store, the terminal
or an error message; nor a notification of its gate, sent by email (the email ledger) and to a
webhook whose URL holds one."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.receivers import http_receiver, smtp_receiver

from .conftest import Runner, journal_entries, rows_holding, store_url
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


def notifying(mail: int, hook: int) -> str:
    """``aios.yaml`` lines: the gate told by email (SMTP, so the email ledger records it) and
    to a webhook whose path is a secret, as an ntfy topic is."""
    return (f"adapters:\n  email: {{smtp: {{host: 127.0.0.1, port: {mail}, starttls: false}}}}\n"
            f'  http: {{allow_hosts: ["127.0.0.1:{hook}"]}}\n'
            "notify:\n  - email: owner@example.com\n"
            f'  - webhook: "http://127.0.0.1:{hook}/${{{{ secrets.TOKEN }}}}"\n')


def test_secrets_are_masked_everywhere(aiosrun: Runner, tmp_path: Path, store: str) -> None:
    with smtp_receiver() as mail, http_receiver() as hook:
        workspace(tmp_path, store + "secrets:\n  env: [TOKEN]\n" + notifying(mail.port,
                                                                             hook.port),
                  secretive=PLAYBOOK)
        (tmp_path / ".env").write_text(f"API_KEY={FROM_FILE}\n")
        env = {"TOKEN": FROM_ENV}
        printed = []
        aiosrun("apply", env=env)
        first = aiosrun("serve", "--once", env=env)  # notifications start from here
        assert first.returncode == 0, first.stderr
        run = aiosrun("run", "secretive", "--format", "json", env=env)
        printed.append(run.stdout + run.stderr)
        run_id = json.loads(run.stdout)["id"]
        assert json.loads(run.stdout)["waiting"]["message"] == "Use *** for key=***?"
        told = aiosrun("serve", "--once", env=env)
        printed.append(told.stdout + told.stderr)
        (message,) = mail.messages
        (posted,) = hook.posts
    assert posted.path == f"/{FROM_ENV}"  # the webhook's URL was resolved for the request
    assert "Use *** for key=***?" in str(message.get_payload()) + str(posted.body)
    printed += [message.as_string(), json.dumps(posted.body)]
    # the store's email ledger (shared by every worker of a PostgreSQL store) recorded it
    assert [e["state"] for e in journal_entries(tmp_path, "effects/email")] == ["intent", "done"]
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
    url = store_url(tmp_path)
    if url is not None:  # every column of every table: events, index, snapshots, ledgers
        assert rows_holding(url, [FROM_FILE.encode(), FROM_ENV.encode()]) == []
