"""``aiosrun serve``: the long-running process that makes a workspace run by itself.

Each tick it resumes runs a crash left behind, fires gates and waits whose time has come,
dispatches events, and starts scheduled playbooks (cron, UTC) once per slot: the run id
``cron-<playbook>-<slot>`` makes a slot start once, whoever notices it. SIGINT and SIGTERM
stop it cleanly: runs in flight stop at the next step boundary and stay resumable.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import signal
from collections.abc import Callable
from typing import Any

import trio
from aiosrun.runtime import clock
from aiosrun.runtime.coordinator.dispatch import dispatch, due_timers
from aiosrun.runtime.coordinator.interpreter import Runner
from aiosrun.runtime.coordinator.leases import Lease
from aiosrun.runtime.coordinator.runs import start_or_load
from aiosrun.runtime.workspace import Workspace

Say = Callable[[str], None]


class Server:
    def __init__(self, ws: Workspace, say: Say, interval: float = 1.0) -> None:
        self.ws = ws
        self.say = say
        self.interval = interval
        self.started = clock.now()
        self.stopping = False

    def lock(self) -> int | None:
        """Only one serve per workspace; commands see the lock and leave dispatch to us."""
        self.ws.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.ws.state_dir / "serve.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    async def run(self, once: bool) -> None:
        async with trio.open_nursery() as nursery:
            if not once:
                nursery.start_soon(self.watch_signals, nursery.cancel_scope)
            while True:
                await self.tick()
                if once or self.stopping:
                    nursery.cancel_scope.cancel()
                    return
                with trio.move_on_after(self.interval):
                    while not self.stopping:
                        await trio.sleep(0.05)

    async def watch_signals(self, scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                self.say(f"{signal.Signals(signum).name}: stopping after the current steps")
                self.stopping = True
                return

    async def tick(self) -> None:
        now = clock.now()
        state = self.ws.workspace_state()
        for summary in list(state.runs.values()):
            if self.stopping or summary.parent is not None:
                continue
            if summary.status not in ("running", "failed", "waiting"):
                continue
            run = self.ws.run_state(summary.id)
            if run.finished or (run.status == "waiting" and not due_timers(run, now)):
                continue
            await self.execute(self.ws.playbook(run.digest), run, "resumed")
        if not self.stopping:
            for run in await dispatch(self.ws, should_stop=lambda: self.stopping,
                                      on_rejected=self.say):
                self.say(f"event: run {run.id} ({run.playbook}) {run.status}")
        if not self.stopping:
            await self.schedules(now)
        self.ws.log.sync()
        self.ws.save_workspace_snapshot()

    async def schedules(self, now: dt.datetime) -> None:
        from croniter import croniter

        state = self.ws.workspace_state()
        for name, digest in sorted(state.current.items()):
            playbook = self.ws.playbook(digest)
            for expression in playbook.triggers.schedules:
                slot = croniter(expression, now).get_prev(dt.datetime)
                if slot < self.started - dt.timedelta(seconds=self.interval):
                    continue  # slots from before we started are not back-filled
                run_id = f"cron-{name}-{slot:%Y%m%dT%H%M}Z"
                if run_id in state.runs:
                    continue
                loaded, run = start_or_load(self.ws, name, {}, run_id=run_id,
                                            trigger={"schedule": expression,
                                                     "slot": clock.stamp(slot)})
                await self.execute(loaded, run, f"scheduled ({expression})")

    async def execute(self, playbook: Any, run: Any, why: str) -> None:
        lease = Lease(self.ws.state_dir / "runs", run.id)
        if not lease.try_acquire():
            return
        try:
            runner = Runner(self.ws, playbook, run)
            runner.should_stop = lambda: self.stopping
            final = await runner.execute()
        finally:
            lease.release()
        self.say(f"run {final.id} ({final.playbook}) {why}: {final.status}")
