"""apply, run, status, timeline, replay, cancel and doctor through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from aiosrun.runtime.log.eventlog import EventLog

from tests.support.leases import lease_held

from .conftest import Runner, _aiosrun_command, once_the_lease_lapses, wait_until_leases_lapse

HELLO = """apiVersion: aiosrun/v1
kind: Playbook
name: hello
inputs:
  who: {type: string}
  times: {type: integer, default: 1}
steps:
  - id: greet
    uses: files.append
    with: {path: greetings.txt, line: "hello ${{ inputs.who }} x${{ inputs.times }}"}
    compensate: {uses: files.append, with: {path: undone.txt, line: greet}}
  - id: nap
    uses: debug.sleep
    with: {seconds: "${{ inputs.times }}"}
outputs:
  said: ${{ steps.greet.outputs.path }}
"""


def workspace(root: Path, store: str = "", **playbooks: str) -> Path:
    """A workspace with ``playbooks``; ``store``: its ``store:`` line (none: JSONL)."""
    (root / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n" + store)
    (root / "playbooks").mkdir(exist_ok=True)
    for name, text in playbooks.items():
        (root / "playbooks" / f"{name}.yaml").write_text(text)
    return root


def records(root: Path) -> list[dict[str, object]]:
    log = EventLog(root / ".aios" / "log").open()
    try:
        return [r.to_json() for r in log.read()]
    finally:
        log.close()


def test_apply_prints_a_plan_and_records_versions(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, hello=HELLO, other=HELLO.replace("name: hello", "name: other"))
    dry = aiosrun("apply", "--dry-run")
    assert dry.returncode == 0
    assert "  + hello (new " in dry.stdout and "dry run: nothing recorded" in dry.stdout
    assert not (tmp_path / ".aios" / "log" / "000000000001.jsonl").read_text()
    first = aiosrun("apply")
    assert "Applied: 2 to apply, 0 to remove, 0 unchanged" in first.stdout
    (tmp_path / "playbooks" / "hello.yaml").write_text(HELLO.replace("x${{", "times ${{"))
    (tmp_path / "playbooks" / "other.yaml").unlink()
    second = aiosrun("apply")
    assert "  ~ hello (" in second.stdout and "  - other (removed" in second.stdout
    assert "Applied: 1 to apply, 1 to remove, 0 unchanged" in second.stdout
    kinds = [r["type"] for r in records(tmp_path)]
    assert kinds == ["PlaybookApplied", "PlaybookApplied", "PlaybookApplied", "PlaybookRemoved"]


def test_apply_refuses_invalid_playbooks(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, hello=HELLO.replace("uses: debug.sleep", "usse: debug.sleep"))
    done = aiosrun("apply")
    assert done.returncode == 1
    assert "unknown key 'usse'" in done.stdout and "nothing applied" in done.stderr
    assert records(tmp_path) == []


def test_apply_records_the_git_commit(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, hello=HELLO)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "playbooks"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert aiosrun("apply").returncode == 0
    assert records(tmp_path)[0]["data"]["commit"] == head  # type: ignore[index]


def test_run_with_inputs_and_json_output(aiosrun: Runner, tmp_path: Path,
                                         store: str) -> None:
    workspace(tmp_path, store, hello=HELLO)
    aiosrun("apply")
    (tmp_path / "in.yaml").write_text("who: Ada\n")
    done = aiosrun("run", "hello", "--inputs", "in.yaml", "-i", "times=0", "--format", "json")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "succeeded" and run["outputs"] == {"said": "greetings.txt"}
    assert [(s["id"], s["status"], s["attempts"]) for s in run["steps"]] == [
        ("greet", "succeeded", 1), ("nap", "succeeded", 1)]
    assert run["waiting"] is None and run["cost_usd"] == 0 and len(run["version"]) == 12
    assert (tmp_path / "greetings.txt").read_text() == "hello Ada x0\n"
    bad = aiosrun("run", "hello", "-i", "times=lots")
    assert bad.returncode == 1 and "missing input 'who'" in bad.stderr


def test_run_a_file_without_apply(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path)
    (tmp_path / "adhoc.yaml").write_text(HELLO)
    done = aiosrun("run", "adhoc.yaml", "-i", "who=Bo", "-i", "times=0")
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stdout


def test_failed_run_exits_1_and_compensates(aiosrun: Runner, tmp_path: Path,
                                            store: str) -> None:
    workspace(tmp_path, store, hello=HELLO.replace("uses: debug.sleep\n    with: {seconds: "
                                            "\"${{ inputs.times }}\"}",
                                            "uses: debug.fail\n    with: {times: 1, "
                                            "error: permanent}"))
    aiosrun("apply")
    done = aiosrun("run", "hello", "-i", "who=Cy")
    assert done.returncode == 1
    assert "compensated" in done.stdout
    assert (tmp_path / "undone.txt").read_text() == "greet\n"


def start_and_kill(root: Path, *args: str, after: float, until: Path | None = None) -> None:
    process = subprocess.Popen([*_aiosrun_command(), "--workspace", str(root), *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not until.exists() if until is not None else not lease_held(root):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(after)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def test_a_run_keeps_its_version_when_the_playbook_changes(aiosrun: Runner, tmp_path: Path,
                                                           store: str) -> None:
    workspace(tmp_path, store, hello=HELLO)
    aiosrun("apply")
    start_and_kill(tmp_path, "run", "hello", "-i", "who=Di", "-i", "times=2", after=0.2,
                   until=tmp_path / "greetings.txt")
    (tmp_path / "playbooks" / "hello.yaml").write_text(HELLO.replace("hello ${{", "bye ${{"))
    assert aiosrun("apply").returncode == 0
    (run_id,) = [r["id"] for r in json.loads(aiosrun("runs", "--format", "json").stdout)]
    done = once_the_lease_lapses(lambda: aiosrun("resume", run_id))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "greetings.txt").read_text() == "hello Di x2\n"


def test_status_timeline_and_replay(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, hello=HELLO)
    aiosrun("apply")
    run = json.loads(aiosrun("run", "hello", "-i", "who=Ed", "-i", "times=0", "--format",
                             "json").stdout)
    tree = json.loads(aiosrun("timeline", run["id"], "--format", "json").stdout)
    assert tree["started_by"] == {"kind": "operator"} and tree["children"] == []
    timeline = tree["events"]
    kinds = [row["type"] for row in timeline]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunSucceeded"
    greet_done = next(row for row in timeline if row["type"] == "StepSucceeded")
    assert greet_done["path"] == "greet" and greet_done["duration"] >= 0
    middle = greet_done["seq"]
    replayed = json.loads(aiosrun("replay", run["id"], "--at", str(middle), "--format",
                                  "json").stdout)
    assert replayed["status"] == "running" and replayed["seq"] == middle
    assert [s["id"] for s in replayed["steps"]] == ["greet"]
    text = aiosrun("status", run["id"])
    assert "succeeded  greet attempts=1" in text.stdout
    assert aiosrun("status", "nope").returncode == 1


def test_cancel_compensates_an_unfinished_run(aiosrun: Runner, tmp_path: Path,
                                              store: str) -> None:
    workspace(tmp_path, store, hello=HELLO)
    aiosrun("apply")
    start_and_kill(tmp_path, "run", "hello", "-i", "who=Fi", "-i", "times=30", after=0.5,
                   until=tmp_path / "greetings.txt")
    (run_id,) = [r["id"] for r in json.loads(aiosrun("runs", "--format", "json").stdout)]
    wait_until_leases_lapse(tmp_path)  # before: a live lease means "cancel requested"
    done = aiosrun("cancel", run_id)
    assert done.returncode == 0, done.stderr
    assert f"run {run_id}: cancelled" in done.stdout
    assert (tmp_path / "undone.txt").read_text() == "greet\n"
    assert aiosrun("cancel", run_id).returncode == 1  # already ended


def test_doctor_rebuilds_what_is_derived(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, hello=HELLO)
    aiosrun("apply")
    aiosrun("run", "hello", "-i", "who=Gus", "-i", "times=0")
    (tmp_path / ".aios" / "log" / "runs.idx").unlink()
    done = aiosrun("doctor", "--rebuild")
    assert done.returncode == 0, done.stderr
    assert "checksums ok" in done.stdout and "rebuilt the run index (1 runs)" in done.stdout
    assert json.loads(aiosrun("runs", "--format", "json").stdout)[0]["status"] == "succeeded"


def test_commands_outside_a_workspace(aiosrun: Runner, tmp_path: Path) -> None:
    done = aiosrun("runs")
    assert done.returncode == 1 and "no workspace here" in done.stderr


def test_log_settings_and_torn_tail_warning(aiosrun: Runner, tmp_path: Path) -> None:
    from aiosrun.runtime.workspace import Workspace

    workspace(tmp_path, hello=HELLO)
    (tmp_path / "aios.yaml").write_text(
        "apiVersion: aiosrun/v1\nkind: Workspace\nlog: {fsync: always, segment_bytes: 8192}\n")
    with Workspace(tmp_path) as ws:
        assert ws.log.fsync_policy == "always" and ws.log.segment_bytes == 8192
    aiosrun("apply")
    with open(tmp_path / ".aios" / "log" / "000000000001.jsonl", "ab") as handle:
        handle.write(b'{"seq":99,"ts')
    done = aiosrun("runs")
    assert done.returncode == 0
    assert "warning:" in done.stderr and "torn last record" in done.stderr


READS = """apiVersion: aiosrun/v1
kind: Playbook
name: reads
inputs:
  who: {type: string, default: x}
steps:
  - id: ask
    if: ${{ inputs.who == 'gate' }}
    gate: {message: "${{ vars.missing }}"}
  - id: each
    if: ${{ inputs.who == 'each' }}
    foreach:
      items: ${{ fromJSON('[1]') }}
      steps:
        - id: one
          uses: debug.fail
          with: {times: 1, error: permanent}
  - id: send
    if: ${{ inputs.who == 'send' }}
    uses: email.send
    with: {to: "${{ vars.missing }}", subject: s, body: b}
"""


def test_output_a_person_reads(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, reads=READS)
    assert aiosrun("apply").returncode == 0
    (tmp_path / "bad.yaml").write_text("who: [1,\n")
    bad = aiosrun("run", "reads", "--inputs", "bad.yaml")
    assert bad.returncode == 1 and bad.stderr.count("error:") == 1, bad.stderr
    gate = json.loads(aiosrun("run", "reads", "-i", "who=gate", "--format", "json").stdout)
    assert gate["waiting"]["message"] == "null"
    each = aiosrun("run", "reads", "-i", "who=each")
    assert "error: foreach item each[0] did not succeed" in each.stdout, each.stdout
    send = aiosrun("run", "reads", "-i", "who=send")
    assert "email.send: to: null is not valid" in send.stdout, send.stdout
    for done in (bad, each, send):
        assert "None" not in done.stdout + done.stderr
