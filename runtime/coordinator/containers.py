"""Steps that hold steps: ``parallel`` and ``foreach`` (children in a trio nursery that owns
them; ``fail_fast`` cancels the siblings) and ``call`` (a child run)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
from aiosrun.adapters.base import (
    PermanentError,
)
from aiosrun.dsl import ir
from aiosrun.dsl.render import render
from aiosrun.runtime.coordinator.frames import (
    Frame,
    Suspended,
    child_run_id,
)
from aiosrun.runtime.coordinator.runner_base import RunnerBase
from aiosrun.runtime.coordinator.runs import start_or_load


class LimitExceeded(PermanentError):
    error_class = "limit"


def json_type(value: Any) -> str:
    """A value's type as a playbook author names it (``null``, not Python's ``NoneType``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else type(value).__name__


class Containers(RunnerBase):
    async def parallel(self, body: ir.Parallel, frame: Frame, path: str) -> Any:
        child_frame = frame.child(f"{path}/")
        jobs = [(child, child_frame) for child in body.steps]
        await self.fan_out(jobs, body.max_concurrency or len(jobs), body.fail_fast,
                           lambda job: self.run_step(*job),
                           lambda job: self._failed(job[1].prefix + job[0].id))
        if self.suspended:
            raise Suspended  # a child waits for the operator: the container is not done
        results = {}
        for child in body.steps:
            state = self.state.steps.get(f"{path}/{child.id}")
            if state is None or (state.status in ("failed", "cancelled")
                                 and not state.continued):
                raise PermanentError(f"parallel step '{child.id}' did not succeed")
            results[child.id] = state.outputs
        return results

    async def fan_out(self, jobs: list[Any], limit: int, fail_fast: bool,
                      work: Callable[[Any], Any], failed: Callable[[Any], bool]) -> None:
        """Run ``work(job)`` for each job in a nursery, at most ``limit`` at once, started in
        order (a job is admitted before its task starts); ``fail_fast`` cancels the rest."""
        admission = trio.Semaphore(max(1, limit))

        async def one(job: Any, nursery: trio.Nursery) -> None:
            try:
                await work(job)
            finally:
                admission.release()
            if fail_fast and failed(job):
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            for job in jobs:
                await admission.acquire()
                nursery.start_soon(one, job, nursery)

    def _failed(self, path: str) -> bool:
        state = self.state.steps.get(path)
        return state is not None and state.status in ("failed", "cancelled") \
            and not state.continued

    async def foreach(self, body: ir.Foreach, frame: Frame, path: str) -> Any:
        items = render(body.items, self.contexts(frame))
        if not isinstance(items, list):
            raise PermanentError(f"foreach items must be a list, got {json_type(items)}")
        most = self.ws.settings.limits.get("max_foreach_items")
        if most is not None and len(items) > most:
            raise LimitExceeded(f"foreach has {len(items)} items, more than "
                                f"policy.limits.max_foreach_items ({most})")
        frames = [frame.child(f"{path}[{i}]/", (body.item_name, item, i))
                  for i, item in enumerate(items)]
        await self.fan_out(frames, body.max_concurrency, body.fail_fast,
                           lambda item_frame: self.run_steps(body.steps, item_frame),
                           lambda item_frame: self._frame_failed(body, item_frame))
        if self.suspended:
            raise Suspended  # an item waits for the operator: the foreach is not done
        results = []
        for item_frame in frames:
            if self._frame_failed(body, item_frame) or any(
                    self.state.steps.get(item_frame.prefix + s.id) is None for s in body.steps):
                raise PermanentError(f"foreach item {item_frame.prefix.rstrip('/')} did not "
                                     "succeed")
            results.append({s.id: self.state.steps[item_frame.prefix + s.id].outputs
                            for s in body.steps})
        return results

    def _frame_failed(self, body: ir.Foreach, frame: Frame) -> bool:
        return any(self._failed(frame.prefix + step.id) for step in body.steps)

    async def call_playbook(self, body: ir.Call, frame: Frame, path: str) -> Any:
        child_id = child_run_id(self.state.id, path)
        inputs = render(body.args, self.contexts(frame))
        child = start_or_load(self.ws, body.playbook, inputs, run_id=child_id,
                              parent=(self.state.id, path), cause=self.state.last_seq)
        state = await type(self)(self.ws, child[0], child[1], self.on_record).execute()
        if state.status != "succeeded":
            raise PermanentError(f"child run {child_id} ended {state.status}")
        return state.outputs
