"""Erasure that reaches every byte under ``.aios/`` and, on PostgreSQL, every column of every
table: a playbook's own ``memory.forget``, short texts, escaped and cut copies, and a SIGKILL
anywhere in the middle (the JSONL log's rewrite of its segments, PostgreSQL's transaction)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer

from .conftest import Runner, rows_holding, store_url

WORKSPACE = ("apiVersion: aiosrun/v1\nkind: Workspace\n"
             "log: {segment_bytes: 4096}\n")  # small segments: the copies span several
NOTE = ('Quentin Zarathustra keeps his "spare" key under the blue flowerpot, and the alarm '
        'code is written on the back of the calendar in the hallway cupboard')
SHORT = "Zq4471"

TELLING = """apiVersion: aiosrun/v1
kind: Playbook
name: telling
memory: [customers]
inputs:
  note: {type: string}
  code: {type: string}
  forget: {type: boolean, default: false}
steps:
  - id: keep
    uses: memory.remember
    with: {domain: customers, text: "${{ inputs.note }}", id: quentin}
  - id: code
    uses: memory.remember
    with: {domain: customers, text: "${{ inputs.code }}", id: code}
  - id: find
    uses: memory.search
    with: {domain: customers, query: "Quentin Zarathustra key", k: 3}
  - id: escaped
    uses: debug.echo
    with: {value: "${{ toJSON(steps.find.outputs.hits) }}"}
  - id: mail
    uses: email.send
    with: {to: ops@example.com, subject: "note", body: "${{ steps.find.outputs.hits[0].text }}"}
  - id: forget
    if: ${{ inputs.forget }}
    uses: memory.forget
    with: {domain: customers, id: quentin}
  - id: after
    uses: debug.echo
    with: {value: "after: ${{ steps.find.outputs.hits[0].text }}"}
outputs:
  said: ${{ steps.find.outputs.hits[0].text }}
  code: "the code is ${{ inputs.code }}"
"""


def probes(text: str) -> list[bytes]:
    """Pieces of ``text`` as they would sit in any file: raw, JSON-escaped once and twice,
    and fragments that no encoding used here changes (a cut copy holds its beginning)."""
    escaped = json.dumps(text)[1:-1]
    return [text.encode(), escaped.encode(), json.dumps(escaped)[1:-1].encode(),
            text[:40].encode(), b"blue flowerpot", b"hallway cupboard"]


def holders(root: Path, needles: list[bytes]) -> list[str]:
    """Where a needle sits: a file under ``.aios/`` (memory shards, outbox, cache and, on the
    JSONL store, the log and snapshots), or a column of the PostgreSQL store's database."""
    url = store_url(root)
    return [f"{p}: {n!r}" for p in (root / ".aios").rglob("*") if p.is_file()
            for n in needles if n in p.read_bytes()] + (
        rows_holding(url, needles) if url is not None else [])


def run_telling(aiosrun: Runner, root: Path, *, forget: bool, store: str = "") -> str:
    (root / "aios.yaml").write_text(WORKSPACE + store)
    (root / "telling.yaml").write_text(TELLING)
    aiosrun("memory", "add", "Quentin Zarathustra prefers phone calls", "-d", "customers",
            "--id", "other")
    from aiosrun.adapters.llm import ModelCache  # an answer cached earlier that quoted it

    ModelCache(root / ".aios" / "cache" / "models").put("ab" * 32, {"summary": NOTE})
    args = ["run", "telling.yaml", "-i", f"note={NOTE}", "-i", f"code={SHORT}",
            "--format", "json"]
    run = aiosrun(*args, *(["-i", "forget=true"] if forget else []))
    assert run.returncode == 0, run.stdout + run.stderr
    aiosrun("memory", "stats")  # the episode: it keeps an 80-character cut of `said`
    return str(json.loads(run.stdout)["id"])


def assert_whole(aiosrun: Runner, run_id: str) -> None:
    doctor = aiosrun("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    timeline = aiosrun("timeline", run_id)
    assert timeline.returncode == 0 and "RunSucceeded" in timeline.stdout, timeline.stderr


def test_a_playbooks_forget_step_erases_the_copies_its_run_made(
        aiosrun: Runner, tmp_path: Path, store: str) -> None:
    run_id = run_telling(aiosrun, tmp_path, forget=True, store=store)
    assert holders(tmp_path, probes(NOTE)) == []
    assert_whole(aiosrun, run_id)
    state = json.loads(aiosrun("status", run_id, "--format", "json").stdout)
    assert state["outputs"]["said"] == "[forgotten]"  # recorded after the forget: scrubbed
    mail = next((tmp_path / ".aios" / "outbox").glob("*.eml")).read_text()
    assert "[forgotten]" in mail
    found = json.loads(aiosrun("memory", "search", "Quentin Zarathustra", "-d", "customers",
                               "--format", "json").stdout)
    assert "quentin" not in {h["id"] for h in found} and "other" in {h["id"] for h in found}
    again = aiosrun("run", "telling.yaml", "-i", "note=a later note about Quentin",
                    "-i", "code=Yx9", "--format", "json")
    assert again.returncode == 0, again.stdout + again.stderr  # the log goes on, seq whole


def test_forget_reaches_short_cut_and_escaped_copies(aiosrun: Runner, tmp_path: Path) -> None:
    """On the JSONL store; on PostgreSQL the same ``forget`` runs in the SIGKILL test below,
    which reads the rows right after its transaction commits (``redacted``)."""
    run_id = run_telling(aiosrun, tmp_path, forget=False)
    episode = holders(tmp_path, [b"blue flowerpot"])
    assert any("memory" in h for h in episode), episode  # the episode's cut copy is there
    forgot = aiosrun("memory", "forget", "quentin", "code")
    assert forgot.returncode == 0 and forgot.stdout.strip() == "2 item(s) forgotten"
    assert holders(tmp_path, [*probes(NOTE), SHORT.encode()]) == []
    assert_whole(aiosrun, run_id)
    episodes = json.loads(aiosrun("memory", "search", "Playbook telling", "-d", "operations",
                                  "--format", "json").stdout)
    assert episodes and "[forgotten]" in episodes[0]["text"]  # the episode stays, scrubbed


LONG = """apiVersion: aiosrun/v1
kind: Playbook
name: long
memory: [customers]
inputs:
  note: {type: string}
steps:
  - id: keep
    uses: memory.remember
    with: {domain: customers, text: "${{ inputs.note }}", id: quentin}
""" + "".join(f"""  - id: echo{i}
    uses: debug.echo
    with: {{value: "${{{{ inputs.note }}}}"}}
""" for i in range(16))  # enough steps for the run to keep a snapshot (one line per step)


def test_forget_deletes_a_long_runs_snapshot_holding_a_copy(aiosrun: Runner, tmp_path: Path,
                                                            store: str) -> None:
    (tmp_path / "aios.yaml").write_text(WORKSPACE + store)
    (tmp_path / "long.yaml").write_text(LONG)
    run = aiosrun("run", "long.yaml", "-i", f"note={NOTE}", "--format", "json")
    assert run.returncode == 0, run.stdout + run.stderr
    run_id = json.loads(run.stdout)["id"]
    before = holders(tmp_path, [b"blue flowerpot"])
    assert any("snapshot" in h for h in before), before
    forgot = aiosrun("memory", "forget", "quentin")
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    assert holders(tmp_path, probes(NOTE)) == []
    assert_whole(aiosrun, run_id)
    state = json.loads(aiosrun("status", run_id, "--format", "json").stdout)
    assert state["steps"][-1]["outputs"] == {"value": "[forgotten]"}


KILLER = """
import os, signal, sys
from pathlib import Path
point = sys.argv[1]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def after(original, when):
    def call(*args, **kwargs):
        result = original(*args, **kwargs)
        if when(*args):
            die()
        return result
    return call

from aiosrun.runtime import erasure
from aiosrun.runtime.log import redaction
if point == "pending":  # the texts noted, nothing erased yet
    erasure.Erasure.begin = after(erasure.Erasure.begin, lambda *a: True)
elif point == "memory":  # the shards erased, the log not yet
    erasure.Erasure.complete = lambda self, texts: die()
elif point == "staged":  # a rewritten segment beside the old one, no commit yet
    redaction._write_synced = after(redaction._write_synced, lambda path, data: True)
elif point == "committed":  # the commit point passed, no segment replaced
    os.replace = after(os.replace, lambda src, dst: str(dst).endswith("rewrite.commit"))
elif point == "replaced":  # one segment replaced, its seal not written
    os.replace = after(os.replace, lambda src, dst: str(src).endswith(".rewriting"))
elif point == "sealed":  # every seal written, the commit file not removed
    unlink = Path.unlink
    def removing(self, *args, **kwargs):
        if self.name == "rewrite.commit":
            die()
        return unlink(self, *args, **kwargs)
    Path.unlink = removing
elif point == "redacting":  # PostgreSQL: one row rewritten, the transaction not committed
    import psycopg
    execute = psycopg.Connection.execute
    psycopg.Connection.execute = after(
        execute, lambda conn, query, *a: str(query).startswith("UPDATE aios_events"))
elif point == "redacted":  # PostgreSQL: the rows rewritten, the files under .aios/ not yet
    from aiosrun.runtime.log.postgres import PostgresStore
    PostgresStore.redact = after(PostgresStore.redact, lambda *a: True)
from aiosrun.runtime.cli import main
sys.argv = ["aiosrun", "memory", "forget", "quentin", "code"]
main()
"""


@pytest.fixture(scope="module")
def told(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from .conftest import _aiosrun_command

    root = tmp_path_factory.mktemp("told")

    def aiosrun(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*_aiosrun_command(), *args], cwd=root, capture_output=True,
                              text=True, timeout=60)

    return root, run_telling(aiosrun, root, forget=False)


@pytest.mark.parametrize("point", ["pending", "memory", "staged", "committed", "replaced",
                                   "sealed"])
def test_a_sigkill_during_erasure_leaves_the_log_whole_and_the_next_open_finishes(
        told: tuple[Path, str], tmp_path: Path, aiosrun: Runner, point: str) -> None:
    shutil.copytree(told[0], tmp_path, dirs_exist_ok=True)
    log = tmp_path / ".aios" / "log"
    before = sorted(p.name for p in log.glob("*.jsonl"))
    assert len(before) > 2
    killed = subprocess.run([sys.executable, "-c", KILLER, point], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert (tmp_path / ".aios" / "forget.pending").exists()
    assert (log / "rewrite.commit").exists() == (point in ("committed", "replaced", "sealed"))
    assert_whole(aiosrun, told[1])  # the first command after the crash finishes the erasure
    assert not (tmp_path / ".aios" / "forget.pending").exists()
    assert not list(log.glob("rewrite.*")) and not list(log.glob("*.rewriting"))
    assert sorted(p.name for p in log.glob("*.jsonl")) == before
    assert holders(tmp_path, [*probes(NOTE), SHORT.encode()]) == []
    found = json.loads(aiosrun("memory", "search", "Quentin Zarathustra", "-d", "customers",
                               "--format", "json").stdout)
    assert {h["id"] for h in found} <= {"other"} and found


@pytest.fixture(scope="module")
def told_pg(tmp_path_factory: pytest.TempPathFactory,
            postgres_server: PostgresServer) -> tuple[Path, str, str]:
    """The workspace of ``told`` on a PostgreSQL store; each test gets a copy of its database
    (``CREATE DATABASE ... TEMPLATE``) beside a copy of its folder."""
    from .conftest import _aiosrun_command

    root = tmp_path_factory.mktemp("told_pg")
    url = postgres_server.database()

    def aiosrun(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*_aiosrun_command(), *args], cwd=root, capture_output=True,
                              text=True, timeout=60)

    run_id = run_telling(aiosrun, root, forget=False,
                         store=f'store: {{url: "{url}", lease_timeout: 3s}}\n')
    return root, run_id, url


@pytest.mark.parametrize("point", ["redacting", "redacted"])
def test_a_sigkill_during_erasure_on_postgresql_leaves_no_copy_once_the_next_open_finishes(
        told_pg: tuple[Path, str, str], tmp_path: Path, aiosrun: Runner,
        postgres_server: PostgresServer, point: str) -> None:
    import psycopg

    origin, run_id, url = told_pg
    shutil.copytree(origin, tmp_path, dirs_exist_ok=True)
    copy = url.rsplit("/", 1)[1] + "_" + point
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{url.rsplit("/", 1)[1]}"')
    (tmp_path / "aios.yaml").write_text((origin / "aios.yaml").read_text().replace(
        url, url.rsplit("/", 1)[0] + "/" + copy))
    needles = [*probes(NOTE), SHORT.encode()]
    before = rows_holding(store_url(tmp_path) or "", needles)  # the copy holds the texts
    assert any(h.startswith("aios_events.line") for h in before), before
    killed = subprocess.run([sys.executable, "-c", KILLER, point], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert (tmp_path / ".aios" / "forget.pending").exists()
    assert bool(rows_holding(store_url(tmp_path) or "", needles)) == (point != "redacted")
    assert_whole(aiosrun, run_id)  # the first command after the crash finishes the erasure
    assert not (tmp_path / ".aios" / "forget.pending").exists()
    assert holders(tmp_path, needles) == []
    found = json.loads(aiosrun("memory", "search", "Quentin Zarathustra", "-d", "customers",
                               "--format", "json").stdout)
    assert {h["id"] for h in found} <= {"other"} and found
