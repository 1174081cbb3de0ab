"""Undoing a failed run: the ``compensate`` bodies of completed steps, in reverse order of
completion, each retried by its own policy; a failure leaves the run ``needs_attention``."""

from __future__ import annotations

import math
import random
from typing import Any

import trio
from aiosrun.adapters.base import (
    AdapterError,
    StepTimeout,
)
from aiosrun.dsl import ir
from aiosrun.dsl.errors import ExpressionError
from aiosrun.runtime.coordinator.frames import (
    Frame,
    StepFailure,
    Suspended,
    backoff_delay,
    child_run_id,
    internal_message,
    step_template,
)
from aiosrun.runtime.coordinator.llm_step import run_llm
from aiosrun.runtime.coordinator.runner_base import RunnerBase
from aiosrun.runtime.log.eventlog import LeaseLost


class Compensations(RunnerBase):
    async def compensate(self) -> bool:
        ok = True
        for path in reversed(list(self.state.completed)):
            step = self.steps_by_template.get(step_template(path))
            if step is None or (step.compensate is None and not isinstance(step.body, ir.Call)):
                continue
            if self.state.compensations.get(path) == "succeeded":
                continue
            if self.state.steps[path].reused_from is not None:
                continue  # the origin run's effect: a fork never undoes it
            self.record("CompensationStarted", path=path)
            try:
                if step.compensate is None:
                    outputs = await self.compensate_child(path)
                else:
                    outputs = await self.run_compensation(step, step.compensate, path)
            except StepFailure as failure:
                self.record("CompensationFailed", path=path, error_class=failure.error_class,
                            message=str(failure))
                ok = False
                continue
            self.record("CompensationSucceeded", path=path, outputs=outputs)
        return ok

    async def compensate_child(self, path: str) -> Any:
        """Undo a ``call:`` child's completed steps (the child run ends ``compensated``): a
        parent's failure reaches into the work its children did, in reverse order."""
        child_id = child_run_id(self.state.id, path)
        state = self.ws.run_state(child_id)
        if not state.playbook:
            return {"run": child_id, "status": None}  # never started: nothing to undo
        runner = type(self)(self.ws, self.ws.playbook(state.digest), state, self.on_record)
        if state.status == "succeeded":
            runner.record("RunCompensating", error={
                "class": "parent_failed",
                "message": f"the parent run {self.state.id} failed"})
        state = await runner.execute()
        if state.status not in ("compensated", "cancelled", "failed"):
            raise StepFailure("compensation", f"child run {child_id} ended {state.status}", 1)
        return {"run": child_id, "status": state.status}

    async def run_compensation(self, step: ir.Step, undo: ir.Compensation, path: str) -> Any:
        prefix = path[: len(path) - len(step.id)]
        frame = Frame(prefix)
        for done in self.state.completed:
            if done.startswith(prefix):
                frame.see(self.state.steps[done].id, done, self.state.steps[done])
        frame.see(step.id, path, self.state.steps.get(path))
        attempt = 0
        key = f"{self.state.id}:{path}:compensate"
        while True:
            attempt += 1
            try:
                limit = (undo.timeout_ms or math.inf) / 1000
                with trio.fail_after(limit):
                    if isinstance(undo.body, ir.Uses):
                        return await self.call_adapter(undo.body, frame, step, path,
                                                       attempt, key, policy=False)
                    if isinstance(undo.body, ir.Llm):
                        return await run_llm(self, undo.body, frame, f"{path}#compensate",
                                             attempt)
                    return await self.call_playbook(undo.body, frame, f"{path}-undo")
            except trio.TooSlowError:
                error: AdapterError = StepTimeout("compensation timed out")
            except AdapterError as exc:
                error = exc
            except ExpressionError as exc:
                raise StepFailure("expression", str(exc), attempt) from None
            except (Suspended, StepFailure, LeaseLost):
                raise  # LeaseLost: the run is another worker's now
            except Exception as exc:  # a misbehaving adapter: this compensation fails
                raise StepFailure("internal", internal_message(exc), attempt) from None
            if not error.retryable or attempt >= undo.retry.max_attempts:
                raise StepFailure(error.error_class, str(error), attempt)
            await trio.sleep(backoff_delay(undo.retry, attempt,
                                           random.Random(f"{key}:{attempt}")))
