"""`aiosrun fork`: a new run of the current version that reuses an old run's first steps,
outputs and all, without redoing their effects; refusals when it cannot."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Runner
from .test_cli_runs import workspace

V1 = """\
apiVersion: aiosrun/v1
kind: Playbook
name: ship
on_failure: halt
inputs:
  order: {type: string}
steps:
  - id: label
    uses: files.append
    with: {path: effects.txt, line: "label ${{ inputs.order }}"}
  - id: carrier
    uses: debug.fail
    with: {times: 9, error: permanent, value: x}
  - id: notify
    uses: files.append
    with: {path: effects.txt, line: "notified ${{ steps.label.outputs.path }}"}
outputs:
  label: ${{ steps.label.outputs.path }}
"""

FIXED = V1.replace("""    uses: debug.fail
    with: {times: 9, error: permanent, value: x}""", """    uses: debug.echo
    with: {value: fixed}""")


def test_fork_reuses_the_first_steps_and_leaves_the_origin(aiosrun: Runner, tmp_path: Path,
                                                           store: str) -> None:
    workspace(tmp_path, store, ship=V1)
    assert aiosrun("apply").returncode == 0
    failed = json.loads(aiosrun("run", "ship", "-i", "order=A7", "--format", "json").stdout)
    assert failed["status"] == "failed"
    (tmp_path / "playbooks" / "ship.yaml").write_text(FIXED)
    assert aiosrun("apply").returncode == 0
    done = aiosrun("fork", failed["id"], "--from", "carrier", "--format", "json")
    assert done.returncode == 0, done.stderr
    fork = json.loads(done.stdout)
    assert fork["status"] == "succeeded" and fork["id"] != failed["id"]
    assert fork["version"] != failed["version"]
    assert [(s["id"], s["status"]) for s in fork["steps"]] == [
        ("label", "succeeded"), ("carrier", "succeeded"), ("notify", "succeeded")]
    assert fork["outputs"] == {"label": "effects.txt"}
    assert (tmp_path / "effects.txt").read_text() == "label A7\nnotified effects.txt\n"
    origin = json.loads(aiosrun("status", failed["id"], "--format", "json").stdout)
    assert origin == failed  # untouched
    timeline = json.loads(aiosrun("timeline", fork["id"], "--format", "json").stdout)
    assert timeline["started_by"] == {"kind": "fork", "run": failed["id"], "step": "carrier",
                                      "seq": None}
    reused = [e for e in timeline["events"] if e.get("reused_from")]
    assert [e["path"] for e in reused] == ["label"]
    text = aiosrun("timeline", fork["id"]).stdout
    assert f"forked from run {failed['id']} at step carrier" in text
    at = aiosrun("fork", failed["id"], "--at", str(reused[0]["seq"]), "--format", "json")
    assert json.loads(at.stdout)["status"] == "succeeded"


def test_fork_refuses_what_the_new_version_cannot_reuse(aiosrun: Runner,
                                                        tmp_path: Path) -> None:
    workspace(tmp_path, ship=V1)
    assert aiosrun("apply").returncode == 0
    failed = json.loads(aiosrun("run", "ship", "-i", "order=A7", "--format", "json").stdout)
    (tmp_path / "playbooks" / "ship.yaml").write_text(FIXED.replace("id: label", "id: tag")
                                                      .replace("steps.label", "steps.tag"))
    assert aiosrun("apply").returncode == 0
    gone = aiosrun("fork", failed["id"], "--from", "carrier")
    assert gone.returncode == 1
    assert "has no step 'label' that the fork would reuse" in gone.stderr
    missing = aiosrun("fork", failed["id"], "--from", "nowhere")
    assert missing.returncode == 1 and "has no step 'nowhere'" in missing.stderr
    (tmp_path / "playbooks" / "ship.yaml").write_text(
        FIXED.replace("order: {type: string}", "order: {type: integer}"))
    assert aiosrun("apply").returncode == 0
    reshaped = aiosrun("fork", failed["id"], "--from", "carrier")
    assert reshaped.returncode == 1 and "no longer fit" in reshaped.stderr
    assert aiosrun("fork", failed["id"]).returncode == 2
    assert len(json.loads(aiosrun("runs", "--format", "json").stdout)) == 1
