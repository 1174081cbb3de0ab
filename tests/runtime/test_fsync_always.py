"""``fsync: always`` costs one fsync per step boundary, not one per record: a step's start
is made durable together with its end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
from aiosrun.runtime import Engine
from aiosrun.runtime.log.eventlog import EventLog

STEPS = 20


def test_one_fsync_per_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n"
                                        "log: {fsync: always}\n")
    (tmp_path / "playbooks").mkdir()
    body = "".join(f"  - {{id: s{i}, uses: debug.echo, with: {{value: {i}}}}}\n"
                   for i in range(STEPS))
    (tmp_path / "playbooks" / "many.yaml").write_text(
        f"apiVersion: aiosrun/v1\nkind: Playbook\nname: many\nsteps:\n{body}")
    fsyncs: list[int] = []
    real_fsync = os.fsync

    async def main() -> None:
        async with Engine.open(tmp_path) as engine:
            await engine.apply()
            monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
            run = await engine.start("many", {}, wait=True)
            assert run.status == "succeeded"
            monkeypatch.undo()

    trio.run(main)
    with EventLog(tmp_path / ".aios" / "log") as log:
        started = [r for r in log.read() if r.type == "StepStarted"]
    assert len(started) == STEPS
    # RunStarted, each step's end, RunSucceeded (and the run's last sync, a no-op): before,
    # each step's start had an fsync of its own (2 x STEPS + 2)
    assert STEPS <= len(fsyncs) <= STEPS + 4, len(fsyncs)
