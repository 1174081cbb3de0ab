"""State across processes, on either store: a process that holds the log open sees what others
append, so `serve` survives a CLI run in flight and concurrent dispatchers start a triggered
run once. On PostgreSQL the database itself may go away mid-run (``pg_ctl stop -m immediate``
on a server of the test's own): a command says so in one line and exits 1, `serve` carries
on, and once the database is back every run ends with each effect once and no seq gap."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiosrun.runtime.log.eventlog import NewEvent, Record
from aiosrun.runtime.workspace import Workspace

from tests.support.postgres import PostgresServer, find_bindir
from tests.support.receivers import free_port, wait_for

from .conftest import Runner, _aiosrun_command, log_records
from .test_cli_runs import workspace

APPENDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from aiosrun.runtime.log.eventlog import NewEvent
    from aiosrun.runtime.workspace import Workspace
    ws = Workspace(Path(sys.argv[1]))
    ws.log.append_many([NewEvent("Tested", {"i": i}, run=sys.argv[2]) for i in range(3)])
    ws.close()
""")

TOKEN = "tok-outage-" + "0123456789" * 2
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
CUT_OFF = """apiVersion: aiosrun/v1
kind: Playbook
name: cut-off
on: {event: job.queued}
inputs:
  job: {type: string, default: cli}
steps:
  - {id: one, uses: files.append, with: {path: out.txt, line: "one ${{ inputs.job }}"}}
  - {id: nap, uses: debug.sleep, with: {seconds: 1.5}}
  - {id: two, uses: files.append, with: {path: out.txt, line: "two ${{ inputs.job }}"}}
"""


def records(root: Path) -> list[dict[str, object]]:
    return [r.to_json() for r in log_records(root)]


def test_an_open_log_sees_runs_another_process_started(tmp_path: Path, store: str) -> None:
    workspace(tmp_path, store)
    ws = Workspace(tmp_path)
    try:
        ws.log.append(NewEvent("Tested", {"i": -1}, run="mine"))
        done = subprocess.run([sys.executable, "-c", APPENDER, str(tmp_path), "theirs"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert [r.data["i"] for r in ws.log.read_run("theirs")] == [0, 1, 2]
        assert sorted(ws.log.runs()) == ["mine", "theirs"]
        assert ws.log.append(NewEvent("After")).seq == 5  # and seq stays contiguous
    finally:
        ws.close()


def test_serve_survives_a_cli_run_in_flight(aiosrun: Runner, tmp_path: Path,
                                            store: str) -> None:
    workspace(tmp_path, store, slow=SLOW)
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


def test_concurrent_dispatchers_start_a_triggered_run_once(aiosrun: Runner, tmp_path: Path,
                                                           store: str) -> None:
    """Each `emit` dispatches every pending event, its own and the others': four at once
    must still start one run per event."""
    workspace(tmp_path, store, greet=TRIGGERED)
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


# ---- PostgreSQL: the database goes away mid-run and comes back ---------------------------

@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    """A server of this module's own, to halt and restart (the session's serves others).
    Durable, as in production: without ``synchronous_commit`` a halt loses the commits of
    its last moments, which aiosrun was told were recorded."""
    if find_bindir() is None:
        pytest.skip("PostgreSQL is not installed: apt-get install -y postgresql")
    with PostgresServer(durable=True) as server:
        yield server


@pytest.fixture
def halting(own_server: PostgresServer) -> Iterator[PostgresServer]:
    """The module's server, started again after the test whatever happened in it."""
    yield own_server
    try:
        own_server.database()
    except Exception:
        own_server.restart()


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*_aiosrun_command(), "--workspace", str(root), *args],
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    return done


def refused_while_down(root: Path) -> None:
    """While the database is away a command says so in one line and exits 1."""
    done = cli(root, "runs")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "cannot connect to PostgreSQL" in done.stderr, \
        done.stderr


def check_once(logged: list[Record], lines: list[str], runs: int) -> None:
    """Every run succeeded, no step succeeded twice, each effect once, no seq gap."""
    assert [r.seq for r in logged] == list(range(1, len(logged) + 1))
    ends = Counter(r.type for r in logged if r.type in ("RunSucceeded", "RunFailed"))
    assert ends == {"RunSucceeded": runs}, ends
    steps = Counter((r.run, r.data["path"]) for r in logged if r.type == "StepSucceeded")
    assert len(steps) == 3 * runs and set(steps.values()) == {1}
    assert sorted(Counter(lines).values()) == [1] * 2 * runs, lines


def test_a_run_cut_off_from_the_database_exits_1_and_resume_finishes_it(
        halting: PostgresServer, tmp_path: Path) -> None:
    root = workspace(tmp_path, f'store: {{url: "{halting.database()}", lease_timeout: 1s}}\n',
                     **{"cut-off": CUT_OFF})
    assert cli(root, "apply").returncode == 0
    process = subprocess.Popen([*_aiosrun_command(), "--workspace", str(root), "run",
                                "cut-off"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    wait_for(lambda: (root / "out.txt").exists() or process.poll() is not None, 60,
             "the first step")
    halting.halt()  # inside nap
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1 and "Traceback" not in err and "internal error" not in err
    assert "PostgreSQL" in err and "nothing was recorded" in err, err
    refused_while_down(root)
    halting.restart()
    done = once_resumed(root)
    assert done.returncode == 0 and "1 run(s) resumed" in done.stderr, done.stdout + done.stderr
    check_once(log_records(root), (root / "out.txt").read_text().splitlines(), 1)


def once_resumed(root: Path) -> subprocess.CompletedProcess[str]:
    """`resume --all` until it takes the run (the lease of the killed command lapses)."""
    for _ in range(100):
        done = cli(root, "resume", "--all")
        if "0 run(s) resumed" not in done.stderr:
            return done
        time.sleep(0.2)
    raise AssertionError("the run was never resumed")


def healthy(api: httpx.Client) -> bool:
    try:
        return api.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_carries_on_when_the_database_goes_away_and_comes_back(
        halting: PostgresServer, tmp_path: Path) -> None:
    """And its HTTP API answers 503 meanwhile (a webhook's sender retries on it)."""
    root = workspace(tmp_path, f'store: {{url: "{halting.database()}", lease_timeout: 1s}}\n'
                     'server: {tokens: ["${{ secrets.API_TOKEN }}"]}\n', **{"cut-off": CUT_OFF})
    (root / ".env").write_text(f"API_TOKEN={TOKEN}\n")
    assert cli(root, "apply").returncode == 0
    said = root / "serve.log"
    listen = f"127.0.0.1:{free_port()}"
    api = httpx.Client(base_url=f"http://{listen}", timeout=30,
                       headers={"Authorization": f"Bearer {TOKEN}"})
    with said.open("w") as out:
        server = subprocess.Popen([*_aiosrun_command(), "--workspace", str(root), "serve",
                                   "--interval", "0.2", "--http", listen],
                                  stdout=out, stderr=out, text=True)
    try:
        wait_for(lambda: "serving" in said.read_text() and healthy(api), 60, "serve to start")
        assert cli(root, "emit", "job.queued", "--id", "job-1",
                   "--data", '{"job": "first"}').returncode == 0
        wait_for(lambda: (root / "out.txt").exists(), 60, "serve to start the run")
        halting.halt()  # inside nap: the run's next record cannot be written
        wait_for(lambda: "serve tries again" in said.read_text()
                 or server.poll() is not None, 60, "serve to notice")
        assert server.poll() is None, said.read_text()
        refused_while_down(root)
        answer = api.post("/api/v1/events", json={"event": "job.queued", "id": "job-0"})
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "unavailable"
        assert answer.headers["retry-after"] == "5"
        halting.restart()
        wait_for(lambda: "the store is back" in said.read_text(), 60, "serve to reconnect")
        assert cli(root, "emit", "job.queued", "--id", "job-2",
                   "--data", '{"job": "second"}').returncode == 0
        wait_for(lambda: said.read_text().count(": succeeded") == 2, 60,
                 f"serve to finish both runs; it said:\n{said.read_text()}")
        assert server.poll() is None, said.read_text()
    finally:
        api.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    text = said.read_text()
    assert "Traceback" not in text and "internal error" not in text, text
    assert text.count("serve tries again") == 1, text  # said once, not each tick
    logged = log_records(root)
    first = next(r.run for r in logged if r.type == "RunStarted")
    stopped = [line for line in text.splitlines() if "stopped, resumable" in line]
    assert all(f"run {first} " in line for line in stopped), text  # only the run in flight
    check_once(logged, (root / "out.txt").read_text().splitlines(), 2)
