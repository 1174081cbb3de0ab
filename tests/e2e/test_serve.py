"""`aiosrun serve` as an operator leaves it running: runs execute concurrently, a misbehaving
adapter fails its own run only, cron slots are not missed and a timer wait is woken (on either
store)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from aiosrun.runtime.coordinator.dispatch import emit
from aiosrun.runtime.workspace import Workspace

from .conftest import Runner, _aiosrun_command, serve_is_up
from .test_cli_runs import workspace

SLOW = """apiVersion: aiosrun/v1
kind: Playbook
name: slow
on: {event: work.requested}
steps:
  - id: think
    uses: debug.sleep
    with: {seconds: 5}
"""
QUICK = """apiVersion: aiosrun/v1
kind: Playbook
name: quick
on: {event: ping}
steps:
  - id: pong
    uses: files.append
    with: {path: pong.txt, line: pong}
"""
BAD = """apiVersion: aiosrun/v1
kind: Playbook
name: bad
on: {event: bad.requested}
steps:
  - id: note
    uses: files.write
    with: {path: note.txt, content: written}
    compensate: {uses: files.delete, with: {path: note.txt}}
  - id: explode
    uses: boom.explode
"""
BOOM = '''"""A workspace adapter that misbehaves: it raises a plain Exception."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from aiosrun.adapters.base import Action, Adapter, CallContext


class BoomAdapter(Adapter):
    name = "boom"
    description = "Raises."
    actions: ClassVar[Mapping[str, Action]] = {
        "explode": Action("Raises a plain Exception.", {"type": "object"}),
    }

    async def call(self, action: str, args: Mapping[str, Any],
                   ctx: CallContext) -> Mapping[str, Any]:
        raise Exception("the adapter fell over")
'''


def seconds(start: str, end: str) -> float:
    def parse(ts: str) -> dt.datetime:
        return dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")

    return (parse(end) - parse(start)).total_seconds()


def status(aiosrun: Runner, run_id: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(aiosrun("status", run_id, "--format", "json").stdout)
    return result


def wait_for(aiosrun: Runner, ids: list[str], seconds: float) -> dict[str, dict[str, Any]]:
    """The runs' objects once none is running or waiting any more (bounded)."""
    deadline = time.time() + seconds
    while True:
        listed = {r["id"]: r for r in json.loads(aiosrun("runs", "--format", "json").stdout)}
        if all(i in listed and listed[i]["status"] not in ("running", "waiting") for i in ids) \
                or time.time() > deadline:
            return {i: status(aiosrun, i) for i in ids if i in listed}
        time.sleep(0.2)


def test_serve_runs_concurrently_and_survives_a_misbehaving_adapter(
        aiosrun: Runner, tmp_path: Path, store: str) -> None:
    workspace(tmp_path, store, slow=SLOW, quick=QUICK, bad=BAD)
    (tmp_path / "adapters").mkdir()
    (tmp_path / "adapters" / "boom.py").write_text(BOOM)
    assert aiosrun("apply").returncode == 0
    server = subprocess.Popen([*_aiosrun_command(), "--workspace", str(tmp_path), "serve",
                               "--interval", "0.2"], stderr=subprocess.PIPE, text=True)
    try:
        serve_is_up(tmp_path)
        done = aiosrun("emit", "work.requested")
        assert done.returncode == 0 and "serve dispatches it" in done.stderr
        seqs = [int(done.stderr.split("seq ")[1].split(")")[0])]
        ws = Workspace(tmp_path)  # the next events arrive together, as webhooks would
        for event in ("work.requested", "ping", "bad.requested"):
            seqs.append(emit(ws, event, None, {"test": True}).seq)
        ws.log.sync()
        ws.close()
        ids = [f"ev{seqs[0]}-slow", f"ev{seqs[1]}-slow", f"ev{seqs[2]}-quick",
               f"ev{seqs[3]}-bad"]
        final = wait_for(aiosrun, ids, 40)
        assert aiosrun("emit", "ping").returncode == 0  # serve still serves
        deadline = time.time() + 20
        while time.time() < deadline and len((tmp_path / "pong.txt").read_text().split()) < 2:
            time.sleep(0.1)
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    first, second, quick, bad = (final[i] for i in ids)
    assert first["status"] == second["status"] == quick["status"] == "succeeded", err
    # the two slow runs overlapped, and the quick one ended before either
    assert second["started_at"] < first["finished_at"]
    assert quick["finished_at"] < min(first["finished_at"], second["finished_at"])
    assert seconds(first["started_at"], second["finished_at"]) < 9  # not 5 + 5 in a row
    assert bad["status"] == "compensated" and not (tmp_path / "note.txt").exists()
    explode = next(s for s in bad["steps"] if s["id"] == "explode")
    assert explode["error"] == {"class": "internal",
                                "message": "unexpected Exception: the adapter fell over"}
    assert (tmp_path / "pong.txt").read_text() == "pong\npong\n"
    lines = [line for line in err.splitlines() if " run ev" in line]
    assert len(lines) == 5, err  # one line per run
    assert any(f"run {ids[3]} (bad) started by event (bad.requested): compensated: "
               "unexpected Exception: the adapter fell over" in line for line in lines), err
    assert "Traceback" not in err


CRON = """apiVersion: aiosrun/v1
kind: Playbook
name: minutely
on: {schedule: "* * * * *"}
steps:
  - id: tick
    uses: files.append
    with: {path: ticks.txt, line: "${{ event.slot }}"}
"""


def test_the_readme_cron_line_runs_each_minute(aiosrun: Runner, tmp_path: Path,
                                               store: str) -> None:
    workspace(tmp_path, store, minutely=CRON)
    assert aiosrun("apply").returncode == 0
    # cron starts `serve --once` at the minute; it is up a moment (here 2.5 s) later
    for now in ("2026-11-30T08:00:02.500Z", "2026-11-30T08:01:01.900Z",
                "2026-11-30T08:01:30Z"):
        done = aiosrun("serve", "--once", env={"AIOS_NOW": now})
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "ticks.txt").read_text().split() == [
        "2026-11-30T08:00:00.000000Z", "2026-11-30T08:01:00.000000Z"]


def test_a_slot_between_two_checks_fires_once(tmp_path: Path, store: str) -> None:
    import datetime as dt

    import trio
    from aiosrun.dsl.ir_codec import encode
    from aiosrun.dsl.loader import load_text
    from aiosrun.dsl.validate import validate_document
    from aiosrun.runtime.coordinator.scheduler import Server
    from aiosrun.runtime.log.eventlog import NewEvent
    from aiosrun.runtime.workspace import Workspace

    workspace(tmp_path, store)
    ws = Workspace(tmp_path)
    playbook = validate_document(load_text(CRON, "minutely.yaml"))
    ws.log.append(NewEvent("PlaybookApplied", {"name": playbook.name, "digest": playbook.digest,
                                               "source": "minutely.yaml", "ir": encode(playbook)}))
    said: list[str] = []
    server = Server(ws, said.append, interval=90)
    start = dt.datetime(2026, 11, 30, 8, 0, 30, tzinfo=dt.UTC)
    server.checked_until = start

    async def two_checks() -> None:
        async with trio.open_nursery() as nursery:
            server.nursery = nursery
            await server.schedules(start + dt.timedelta(seconds=80))  # 08:01 is in between
            await server.schedules(start + dt.timedelta(seconds=85))

    trio.run(two_checks)
    ws.close()
    assert (tmp_path / "ticks.txt").read_text().split() == ["2026-11-30T08:01:00.000000Z"]
    assert said == ["run cron-minutely-20261130T0801Z (minutely) scheduled (* * * * *): "
                    "succeeded"]


def test_recovery_isolates_a_run_that_explodes(aiosrun: Runner, tmp_path: Path,
                                               store: str) -> None:
    from aiosrun.runtime.log.eventlog import NewEvent
    from aiosrun.runtime.workspace import Workspace

    workspace(tmp_path, store, quick=QUICK)
    assert aiosrun("apply").returncode == 0
    ws = Workspace(tmp_path)  # two runs a crash left `running`; one cannot even be loaded
    ws.log.append(NewEvent("RunStarted", {"playbook": "gone", "digest": "0" * 64,
                                          "inputs": {}}, run="broken"))
    digest = ws.workspace_state().current["quick"]
    ws.log.append(NewEvent("RunStarted", {"playbook": "quick", "digest": digest,
                                          "inputs": {}}, run="crashed"))
    ws.log.sync()
    ws.close()
    done = aiosrun("resume", "--all")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "run broken (gone): failed" in done.stdout
    assert "run crashed (quick): succeeded" in done.stdout
    broken = status(aiosrun, "broken")
    assert broken["error"]["class"] == "internal"
    for again in (aiosrun("resume", "--all"), aiosrun("serve", "--once")):
        assert again.returncode == 0 and "broken" not in again.stdout + again.stderr


LATER = """apiVersion: aiosrun/v1
kind: Playbook
name: later
steps:
  - id: pause
    wait: {duration: 1s}
  - id: done
    uses: files.append
    with: {path: done.txt, line: done}
"""


def test_a_timer_wait_is_woken_by_a_running_serve(aiosrun: Runner, tmp_path: Path,
                                                  store: str) -> None:
    workspace(tmp_path, store, later=LATER)
    assert aiosrun("apply").returncode == 0
    server = subprocess.Popen([*_aiosrun_command(), "--workspace", str(tmp_path), "serve",
                               "--interval", "0.2"], stderr=subprocess.PIPE, text=True)
    try:
        serve_is_up(tmp_path)
        started = aiosrun("run", "later", "--format", "json")
        assert started.returncode == 3, started.stdout + started.stderr  # waiting
        run_id = json.loads(started.stdout)["id"]
        final = wait_for(aiosrun, [run_id], 30)[run_id]
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert final["status"] == "succeeded", err
    assert (tmp_path / "done.txt").read_text() == "done\n"
    assert f"run {run_id} (later) resumed: succeeded" in err, err


def test_max_concurrent_runs_bounds_what_serve_executes_at_once(tmp_path: Path,
                                                                store: str) -> None:
    import trio
    from aiosrun.runtime.coordinator.runs import start_or_load
    from aiosrun.runtime.coordinator.scheduler import Server

    workspace(tmp_path, store + "policy: {limits: {max_concurrent_runs: 1}}\n",
              slow=SLOW.replace("seconds: 5", "seconds: 0.5"))
    from aiosrun.dsl.ir_codec import encode
    from aiosrun.dsl.loader import load_file
    from aiosrun.dsl.validate import validate_document
    from aiosrun.runtime.log.eventlog import NewEvent

    ws = Workspace(tmp_path)
    playbook = validate_document(load_file(tmp_path / "playbooks" / "slow.yaml"))
    ws.log.append(NewEvent("PlaybookApplied", {"name": "slow", "digest": playbook.digest,
                                               "source": "slow.yaml", "ir": encode(playbook)}))
    server = Server(ws, lambda line: None)
    runs = [start_or_load(ws, "slow", {}, run_id=f"r{i}") for i in range(2)]

    async def both() -> None:
        async with trio.open_nursery() as nursery:
            server.nursery = nursery
            for loaded, state in runs:
                server.hand(loaded, state, "test")

    trio.run(both)
    states = [ws.run_state(f"r{i}") for i in range(2)]
    ws.close()
    assert [state.status for state in states] == ["succeeded", "succeeded"]
    one, other = sorted((state.steps["think"] for state in states),
                        key=lambda step: str(step.started_at))
    assert str(other.started_at) >= str(one.finished_at)  # one after the other
