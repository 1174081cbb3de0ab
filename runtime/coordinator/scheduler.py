"""``aiosrun serve``: the long-running process that makes a workspace run by itself.

Each tick it resumes runs a crash left behind, fires gates and waits whose time has come,
dispatches events, and starts scheduled playbooks (cron, UTC) once per slot: the run id
``cron-<playbook>-<slot>`` makes a slot start once, whoever notices it. Every slot since the
previous check fires (a slot between two checks is not lost), and so does a slot of the
minute before serve started (``serve --once`` from cron takes a moment to start).

Runs execute concurrently in a nursery that the server owns, at most
``policy.limits.max_concurrent_runs`` (default 8) at once: a slow step of one run holds up
no trigger, timer or other run. Each run is isolated: an exception it raises fails that run
(error class ``internal``), is logged, and serve goes on. SIGINT and SIGTERM stop it
cleanly: runs in flight stop at the next step boundary and stay resumable.

A store that goes away (PostgreSQL restarted, the network cut) stops no more than the runs
whose records cannot be written (they stay resumable): serve says so once, tries again each
tick, and says when the store is back; then it resumes those runs like any crash's.
"""

from __future__ import annotations

import datetime as dt
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio
from aiosrun.dsl import ir
from aiosrun.runtime import clock
from aiosrun.runtime.coordinator.dispatch import dispatch, due_timers
from aiosrun.runtime.coordinator.execution import execute_run, fail_internal
from aiosrun.runtime.coordinator.frames import internal_message
from aiosrun.runtime.coordinator.runs import start_or_load
from aiosrun.runtime.log.eventlog import LeaseLost, LogError, StoreUnavailable
from aiosrun.runtime.log.projections import RunState
from aiosrun.runtime.log.storage import StorageError
from aiosrun.runtime.workspace import Workspace

if TYPE_CHECKING:
    from aiosrun.runtime.notify import Notifier

Say = Callable[[str], None]
DEFAULT_CONCURRENCY = 8
STARTUP_GRACE = dt.timedelta(minutes=1)  # a slot this long before serve started still fires
MAX_SLOTS = 1000  # slots fired per schedule and tick: a bound, not a loop forever
MAX_ONCE_ROUNDS = 100  # rounds of `serve --once` (runs that trigger runs)


class Server:
    def __init__(self, ws: Workspace, say: Say, interval: float = 1.0) -> None:
        self.ws = ws
        self.say = say
        self.interval = interval
        self.started = clock.now()
        self.checked_until = self.started - STARTUP_GRACE
        self.stopping = False
        self.on_stop: Callable[[], None] | None = None  # told when a signal asks to stop
        limit = ws.settings.limits.get("max_concurrent_runs", DEFAULT_CONCURRENCY)
        self.limiter = trio.CapacityLimiter(int(limit))
        self.active: set[str] = set()  # runs this server executes right now
        self.nursery: trio.Nursery | None = None
        self.outage: str | None = None  # why the store is away, once said

    async def run(self, once: bool) -> None:
        from aiosrun.runtime.notify import Notifier

        notifier = Notifier(self.ws, self.say)
        async with trio.open_nursery() as outer:
            if not once:
                outer.start_soon(self.watch_signals)
                if notifier.enabled:
                    outer.start_soon(self.notify_forever, notifier)
            async with trio.open_nursery() as runs:
                self.nursery = runs
                if once:
                    await self.run_once()
                else:
                    await self.run_forever()
            self.nursery = None
            if once:
                await self.notify_round(notifier)
            outer.cancel_scope.cancel()

    async def notify_forever(self, notifier: Notifier) -> None:
        """Notifications in their own task: a slow mail server holds up no run."""
        while not self.stopping:
            await self.notify_round(notifier)
            await trio.sleep(self.interval)

    async def notify_round(self, notifier: Notifier) -> None:
        try:
            await notifier.round()
        except StoreUnavailable as exc:
            self.store_away(exc)
        except Exception as exc:  # a bug in notifying must not stop serving
            self.say(f"error: notify: {internal_message(exc)}")

    def store_away(self, exc: StoreUnavailable) -> None:
        """Say once that the store is away (each tick tries again)."""
        if self.outage is None:
            self.outage = str(exc)
            self.say(f"error: {exc}; serve tries again every {self.interval:g}s")

    async def run_once(self) -> None:
        """Rounds until nothing new starts: runs that emit events trigger runs in this call."""
        for _ in range(MAX_ONCE_ROUNDS):
            started = await self.tick()
            if not started and not self.active:
                return
            while self.active:
                await trio.sleep(0.02)

    async def run_forever(self) -> None:
        while not self.stopping:
            await self.tick()
            with trio.move_on_after(self.interval):
                while not self.stopping:
                    await trio.sleep(0.05)

    async def watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                self.say(f"{signal.Signals(signum).name}: stopping after the current steps")
                self.stopping = True
                if self.on_stop is not None:
                    self.on_stop()
                return

    async def tick(self) -> int:
        """One round of checks; returns how many runs it handed to the nursery."""
        now = clock.now()
        handed = 0
        try:
            for phase in (self.recover, self.dispatch, self.schedules):
                if self.stopping:
                    break
                try:
                    handed += await phase(now)
                except StoreUnavailable:
                    raise
                except Exception as exc:  # a bug in one phase must not stop the others
                    self.say(f"error: {phase.__name__}: {internal_message(exc)}")
            await self.ws.durable()
            self.ws.save_workspace_snapshot()
        except StoreUnavailable as exc:
            self.store_away(exc)
            return handed
        if self.outage is not None:
            self.outage = None
            self.say("the store is back: serving again")
        return handed

    async def recover(self, now: dt.datetime) -> int:
        handed = 0
        state = self.ws.workspace_state()
        for summary in list(state.runs.values()):
            if self.stopping:
                break
            if summary.parent is not None or summary.id in self.active:
                continue
            if summary.status not in ("running", "failed", "waiting"):
                continue
            try:
                run = self.ws.run_state(summary.id)
                if run.finished or (run.status == "waiting" and not due_timers(
                        run, now, self.ws.playbook(run.digest).policy.timeout_ms)):
                    continue
            except StoreUnavailable:
                raise  # nothing is wrong with the run: the store is away
            except Exception as exc:  # a run whose state cannot be read fails alone
                fail_internal(self.ws, summary.id, exc)
                self.say(f"run {summary.id} ({summary.playbook}): failed: "
                         f"{internal_message(exc)}")
                continue
            handed += self.hand(None, run, "resumed")
        return handed

    async def dispatch(self, now: dt.datetime) -> int:
        handed = 0

        async def start(playbook: ir.Playbook, state: RunState) -> RunState:
            nonlocal handed
            handed += self.hand(playbook, state, f"started by event ({state.trigger.get('name')})"
                                if isinstance(state.trigger, dict) else "woken by an event")
            return state

        await dispatch(self.ws, should_stop=lambda: self.stopping, on_rejected=self.say,
                       start=start)
        return handed

    async def schedules(self, now: dt.datetime) -> int:
        from croniter import croniter

        handed = 0
        since, self.checked_until = self.checked_until, now
        state = self.ws.workspace_state()
        for name, digest in sorted(state.current.items()):
            playbook = self.ws.playbook(digest)
            for expression in playbook.triggers.schedules:
                slots = croniter(expression, since)
                for _ in range(MAX_SLOTS):
                    slot = slots.get_next(dt.datetime)
                    if slot > now:
                        break
                    run_id = f"cron-{name}-{slot:%Y%m%dT%H%M}Z"
                    if run_id in state.runs or run_id in self.active:
                        continue
                    loaded, run = start_or_load(self.ws, name, {}, run_id=run_id,
                                                trigger={"schedule": expression,
                                                         "slot": clock.stamp(slot)})
                    handed += self.hand(loaded, run, f"scheduled ({expression})")
        return handed

    def hand(self, playbook: ir.Playbook | None, run: RunState, why: str) -> int:
        """Give a run to the nursery (once: a run in flight is not started twice)."""
        if run.id in self.active or self.nursery is None:
            return 0
        self.active.add(run.id)
        self.nursery.start_soon(self.execute, playbook, run, why)
        return 1

    async def execute(self, playbook: ir.Playbook | None, run: RunState, why: str) -> None:
        try:
            async with self.limiter:
                final = await execute_run(self.ws, playbook, run,
                                          should_stop=lambda: self.stopping)
            if final is not None:
                self.say(describe(final, why))
        except LeaseLost as exc:  # stalled past the lease: the other worker carries it on
            self.say(f"run {run.id} ({run.playbook}) {why}: given up: {exc}")
        except (StorageError, LogError) as exc:  # a full disk, the store away
            self.say(f"run {run.id} ({run.playbook}) {why}: stopped, resumable: {exc}")
        except Exception as exc:  # execute_run isolates the run; this guards the guard
            self.say(f"run {run.id} ({run.playbook}) {why}: internal error: "
                     f"{internal_message(exc)}")
        finally:
            self.active.discard(run.id)


def describe(state: RunState, why: str) -> str:
    """One log line per run: what it is, why it ran, how it ended, and the error if any."""
    line = f"run {state.id} ({state.playbook}) {why}: {state.status}"
    if state.error and state.status != "succeeded":
        message = state.error.get("message") or state.error.get("attention")
        if message:
            line += f": {message}"
    return line

