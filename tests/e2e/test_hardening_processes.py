"""State across processes: a process that holds the log open sees what others append, so
`serve` survives a CLI run in flight and concurrent dispatchers start a triggered run once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from aiosrun.runtime.log.eventlog import EventLog, NewEvent

from .conftest import Runner, _aiosrun_command
from .test_cli_runs import records, workspace

APPENDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from aiosrun.runtime.log.eventlog import EventLog, NewEvent
    with EventLog(Path(sys.argv[1])) as log:
        log.append_many([NewEvent("Tested", {"i": i}, run=sys.argv[2]) for i in range(3)])
""")

SLOW = """apiVersion: aiosrun/v1
kind: Playbook
name: slow
steps:
  - {id: one, uses: debug.sleep, with: {seconds: 0.6}}
  - {id: two, uses: debug.sleep, with: {seconds: 0.6}}
  - {id: three, uses: files.append, with: {path: slow.txt, line: done}}
"""
TRIGGERED = """apiVersion: aiosrun/v1
kind: Playbook
name: greet
on:
  event: customer.signed_up
steps:
  - {id: nap, uses: debug.sleep, with: {seconds: 0.3}}
  - {id: welcome, uses: files.append, with: {path: welcomed.txt, line: welcome}}
"""


def test_an_open_log_sees_runs_another_process_started(tmp_path: Path) -> None:
    log = EventLog(tmp_path).open()
    log.append(NewEvent("Tested", {"i": -1}, run="mine"))
    done = subprocess.run([sys.executable, "-c", APPENDER, str(tmp_path), "theirs"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [r.data["i"] for r in log.read_run("theirs")] == [0, 1, 2]
    assert sorted(log.runs()) == ["mine", "theirs"]
    assert log.append(NewEvent("After")).seq == 5  # and seq stays contiguous
    log.close()


def test_serve_survives_a_cli_run_in_flight(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, slow=SLOW)
    assert aiosrun("apply").returncode == 0
    server = subprocess.Popen([*_aiosrun_command(), "--workspace", str(tmp_path), "serve",
                               "--interval", "0.1"], stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # serve is up and ticking
        for _ in range(2):
            done = aiosrun("run", "slow")
            assert done.returncode == 0, done.stderr
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
        time.sleep(0.5)
        assert server.poll() is None
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert "internal error" not in err and "Traceback" not in err, err
    assert (tmp_path / "slow.txt").read_text() == "done\ndone\n"  # each run's effect once


def test_concurrent_dispatchers_start_a_triggered_run_once(aiosrun: Runner,
                                                           tmp_path: Path) -> None:
    """Each `emit` dispatches every pending event, its own and the others': four at once
    must still start one run per event."""
    workspace(tmp_path, greet=TRIGGERED)
    assert aiosrun("apply").returncode == 0
    command = [*_aiosrun_command(), "--workspace", str(tmp_path), "emit", "customer.signed_up"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "Traceback" not in err, err
    logged = records(tmp_path)
    events = [r["seq"] for r in logged if r["type"] == "EventEmitted"]
    started = sorted(r["run"] for r in logged if r["type"] == "RunStarted")
    assert len(events) == 4 and started == sorted(f"ev{seq}-greet" for seq in events)
    assert (tmp_path / "welcomed.txt").read_text() == "welcome\n" * 4
    dispatched = [r["data"]["seq"] for r in logged if r["type"] == "EventDispatched"]
    assert sorted(dispatched) == events, json.dumps(dispatched)
