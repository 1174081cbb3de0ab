"""``aiosrun migrate --to postgresql://...`` copies a JSONL workspace (log, run index,
snapshots, ledgers) and verifies it; the workspace then runs on PostgreSQL where it left
off, and ``doctor`` checks either store."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from .conftest import Runner

PLAYBOOK = """\
apiVersion: aiosrun/v1
kind: Playbook
name: invoice
inputs:
  customer: {type: string}
steps:
  - id: bill
    uses: billing.create_invoice
    with: {customer: "${{ inputs.customer }}", amount: 25}
  - id: review
    gate: {message: "Send it?"}
  - id: note
    uses: files.append
    with: {path: sent.txt, line: "${{ inputs.customer }}"}
"""
HEADER = "apiVersion: aiosrun/v1\nkind: Workspace\n"


def test_migrate_then_continue_on_postgresql(aiosrun: Runner, tmp_path: Path,
                                             postgres_url: str) -> None:
    (tmp_path / "aios.yaml").write_text(HEADER)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "invoice.yaml").write_text(PLAYBOOK)
    assert aiosrun("apply").returncode == 0
    waiting = json.loads(aiosrun("run", "invoice", "--input", "customer=ada",
                                 "--format", "json").stdout)
    assert waiting["status"] == "waiting"
    assert aiosrun("doctor").returncode == 0
    done = aiosrun("migrate", "--to", postgres_url)
    assert done.returncode == 0, done.stderr
    assert "verified" in done.stdout and "records" in done.stdout
    again = aiosrun("migrate", "--to", postgres_url)  # the database is no longer empty
    assert again.returncode == 1 and "already holds" in again.stderr
    assert "Traceback" not in again.stderr and len(again.stderr.strip().splitlines()) == 1

    (tmp_path / "aios.yaml").write_text(HEADER + f'store: {{url: "{postgres_url}"}}\n')
    checked = aiosrun("doctor")
    assert checked.returncode == 0, checked.stderr
    assert "postgresql://" in checked.stdout and "checksums ok" in checked.stdout
    approved = json.loads(aiosrun("approve", waiting["id"], "--format", "json").stdout)
    assert approved["status"] == "succeeded"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        journals = dict(conn.execute("SELECT name, count(*) FROM aios_journal GROUP BY name")
                        .fetchall())
        assert journals == {"billing/ledger": 1, "effects/files": 2}  # copied, then appended
        seqs = [row[0] for row in conn.execute("SELECT seq FROM aios_events ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))
        conn.execute("UPDATE aios_events SET line = replace(line, 'ada', 'eve') WHERE seq = "
                     "(SELECT min(seq) FROM aios_events WHERE run IS NOT NULL)")
    broken = aiosrun("doctor")
    assert broken.returncode == 1 and "checksum mismatch" in broken.stderr
    assert "Traceback" not in broken.stderr
    assert (tmp_path / "sent.txt").read_text() == "ada\n"
