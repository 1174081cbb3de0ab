"""Storage, through the CLI: a full disk is a clear refusal and `resume` finishes the run once
space returns; corruption stops every ordinary reader (not only `doctor`); a read-only
workspace can still be read."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.support.disks import fill

from .conftest import Runner, _aiosrun_command
from .test_cli_runs import workspace

STEPS = """apiVersion: aiosrun/v1
kind: Playbook
name: steps
inputs:
  e: {type: string, default: "{0}{0}{0}{0}{0}{0}{0}{0}"}
  x: {type: string, default: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}
steps:
  - {id: one, uses: files.append, with: {path: out.txt, line: one}}
  - {id: nap, uses: debug.sleep, with: {seconds: 1.5}}
  - id: big  # 32 KiB of output: more than any page's slack
    uses: debug.echo
    with: {value: "${{ format(inputs.e, format(inputs.e, format(inputs.e, inputs.x))) }}"}
  - {id: two, uses: files.append, with: {path: out.txt, line: two}}
"""
GATED = """apiVersion: aiosrun/v1
kind: Playbook
name: gated
steps:
  - {id: ask, gate: {message: "Go?"}}
  - {id: after, uses: files.append, with: {path: gated.txt, line: went}}
"""
HELLO = """apiVersion: aiosrun/v1
kind: Playbook
name: hello
steps:
  - {id: greet, uses: files.append, with: {path: hello.txt, line: hi}}
"""


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*_aiosrun_command(), "--workspace", str(root), *args],
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    return done


def test_a_full_disk_mid_run_is_a_clear_refusal_and_resume_finishes(small_disk: Path) -> None:
    root = workspace(small_disk, steps=STEPS)
    assert cli(root, "apply").returncode == 0
    process = subprocess.Popen([*_aiosrun_command(), "--workspace", str(root), "run", "steps"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (root / "out.txt").exists():
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.01)
    filler = fill(small_disk)  # the disk fills while the run naps
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    assert "no space left on device, nothing was recorded" in err and "Traceback" not in err
    assert cli(root, "runs").returncode == 0  # the log is still readable
    assert "checksums ok" in cli(root, "doctor").stdout
    filler.unlink()
    done = cli(root, "resume", "--all")
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(cli(root, "runs", "--format", "json").stdout)
    assert run["status"] == "succeeded", (err, done.stdout, cli(root, "timeline", run["id"]).stdout)
    assert (root / "out.txt").read_text() == "one\ntwo\n"  # every effect, once


def _ran(aiosrun: Runner, root: Path, times: int = 2) -> list[str]:
    workspace(root, hello=HELLO)
    assert aiosrun("apply").returncode == 0
    ids = []
    for _ in range(times):
        done = aiosrun("run", "hello", "--format", "json")
        assert done.returncode == 0, done.stderr
        ids.append(json.loads(done.stdout)["id"])
    assert (root / ".aios" / "snapshots" / "workspace.snapshot").exists()
    return ids


def _refused(aiosrun: Runner, *args: str) -> str:
    done = aiosrun(*args)
    assert done.returncode == 1, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    return done.stderr + done.stdout


def test_a_flipped_byte_mid_log_stops_every_reader(aiosrun: Runner, tmp_path: Path) -> None:
    first, _ = _ran(aiosrun, tmp_path)
    segment = tmp_path / ".aios" / "log" / "000000000001.jsonl"
    data = bytearray(segment.read_bytes())
    lines = data.splitlines(keepends=True)
    at = sum(len(line) for line in lines[:2]) + 20  # inside line 3, well before the end
    data[at] ^= 0x01
    segment.write_bytes(bytes(data))
    for args in (("runs",), ("status", first), ("run", "hello"), ("inbox",)):
        assert "corrupt event log record" in _refused(aiosrun, *args)
    assert segment.read_bytes() == bytes(data)  # and nothing was appended after it


def test_a_log_cut_at_a_line_boundary_stops_every_reader(aiosrun: Runner,
                                                         tmp_path: Path) -> None:
    first, _ = _ran(aiosrun, tmp_path)
    segment = tmp_path / ".aios" / "log" / "000000000001.jsonl"
    lines = segment.read_bytes().splitlines(keepends=True)
    segment.write_bytes(b"".join(lines[:-3]))
    for args in (("runs",), ("status", first), ("run", "hello")):
        assert "truncated" in _refused(aiosrun, *args)
    assert len(segment.read_bytes().splitlines()) == len(lines) - 3  # no seq was reused


def test_a_cut_the_index_does_not_cover_is_caught_by_the_snapshots(aiosrun: Runner,
                                                                  tmp_path: Path) -> None:
    _ran(aiosrun, tmp_path)
    index = tmp_path / ".aios" / "log" / "runs.idx"
    index.write_text("".join(line for line in index.read_text().splitlines(keepends=True)
                             if not line.startswith("= ")))  # no seals left to compare
    segment = tmp_path / ".aios" / "log" / "000000000001.jsonl"
    lines = segment.read_bytes().splitlines(keepends=True)
    segment.write_bytes(b"".join(lines[:-2]))
    assert "records were cut off the log" in _refused(aiosrun, "runs")
    assert "records were cut off the log" in _refused(aiosrun, "run", "hello")


def test_an_altered_index_entry_stops_readers_until_doctor_rebuilds(aiosrun: Runner,
                                                                    tmp_path: Path) -> None:
    first, second = _ran(aiosrun, tmp_path)
    index = tmp_path / ".aios" / "log" / "runs.idx"
    index.write_text(index.read_text().replace(second, first, 1))
    assert "altered or damaged index entry" in _refused(aiosrun, "status", first)
    assert "altered or damaged index entry" in _refused(aiosrun, "run", "hello")
    assert aiosrun("doctor", "--rebuild").returncode == 0
    done = aiosrun("status", second, "--format", "json")
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "succeeded"


LONG = "apiVersion: aiosrun/v1\nkind: Playbook\nname: long\nsteps:\n" + "".join(
    f"  - {{id: s{i}, uses: debug.echo, with: {{value: hi{i}}}}}\n" for i in range(16))


def test_an_edited_snapshot_stops_readers_until_doctor_rebuilds(aiosrun: Runner,
                                                                tmp_path: Path) -> None:
    workspace(tmp_path, hello=HELLO, long=LONG)
    assert aiosrun("apply").returncode == 0
    long = json.loads(aiosrun("run", "long", "--format", "json").stdout)["id"]
    assert aiosrun("run", "hello").returncode == 0
    assert aiosrun("doctor", "--rebuild").returncode == 0  # saves every snapshot now
    snapshot = tmp_path / ".aios" / "snapshots" / "workspace.snapshot"
    assert '"succeeded"' in snapshot.read_text()
    snapshot.write_text(snapshot.read_text().replace('"succeeded"', '"failed"', 1))
    assert "does not match its checksum" in _refused(aiosrun, "runs")
    run_snapshot = tmp_path / ".aios" / "snapshots" / "runs" / f"{long}.json"
    assert '"hi' in run_snapshot.read_text()  # a run of 16 steps is worth a snapshot
    run_snapshot.write_text(run_snapshot.read_text().replace('"hi', '"ho', 1))
    assert "does not match its checksum" in _refused(aiosrun, "status", long)
    assert aiosrun("doctor", "--rebuild").returncode == 0
    listed = json.loads(aiosrun("runs", "--format", "json").stdout)
    assert [r["status"] for r in listed] == ["succeeded", "succeeded"]


def test_a_read_only_workspace_can_still_be_read(small_disk: Path) -> None:
    root = workspace(small_disk, gated=GATED)
    assert cli(root, "apply").returncode == 0
    run = json.loads(cli(root, "run", "gated", "--format", "json").stdout)
    assert run["status"] == "waiting"
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for args in (("runs",), ("status", run["id"]), ("timeline", run["id"]), ("inbox",),
                 ("doctor",)):
        done = cli(root, *args)
        assert done.returncode == 0, (args, done.stderr)
    assert "Go?" in cli(root, "inbox").stdout
    refused = cli(root, "approve", run["id"])
    assert refused.returncode == 1 and "read-only" in refused.stderr.lower()
