"""The trio coordinator: runs a playbook's steps against adapters, recording every decision.

The interpreter never trusts memory over the log: before each step it looks at the run's
state (folded from the log) and skips what is already decided, so a process killed at any
point continues where it stopped. A step whose attempt was interrupted is tried again with
the same idempotency key (adapters make that effect happen once). Timing decisions (retry
delays with jitter) are recorded before they are waited for, so a resumed run keeps them.

``parallel`` and ``foreach`` children run in a trio nursery that owns them; a failure with
``fail_fast`` cancels the siblings, which are recorded as cancelled.
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any

import trio
from aiosrun.adapters.base import (
    AdapterError,
    RateLimited,
    StepTimeout,
)
from aiosrun.dsl import ir
from aiosrun.dsl.durations import format_duration
from aiosrun.dsl.errors import ExpressionError
from aiosrun.dsl.expressions import uses_status_function
from aiosrun.dsl.render import render
from aiosrun.dsl.values import truthy
from aiosrun.runtime import clock
from aiosrun.runtime.coordinator.compensation import Compensations
from aiosrun.runtime.coordinator.containers import Containers
from aiosrun.runtime.coordinator.frames import (
    Frame,
    StepFailure,
    Suspended,
    backoff_delay,
    internal_message,
    where,
)
from aiosrun.runtime.coordinator.llm_step import run_llm
from aiosrun.runtime.coordinator.runner_base import OnRecord, RunnerBase
from aiosrun.runtime.coordinator.suspension import Suspensions
from aiosrun.runtime.log.eventlog import LeaseLost
from aiosrun.runtime.log.projections import RunState, apply_run

__all__ = ['OnRecord', 'Runner', 'RunnerBase']


class Runner(Suspensions, Containers, Compensations):
    """One run's executor: steps in order, attempts and retries, the run's end."""

    async def execute(self) -> RunState:
        try:
            return await self._execute()
        finally:
            with trio.CancelScope(shield=True):
                await self.models.aclose()
            if self.state.finished and self.playbook.memory and \
                    (self.ws.state_dir / "memory").is_dir():
                await trio.to_thread.run_sync(self.drop_working_memory)

    def drop_working_memory(self) -> None:
        """Working memory lives for one run."""
        with contextlib.suppress(Exception):  # memory upkeep never changes a run's outcome
            self.ws.memory().drop_working(self.state.id, self.playbook.memory)

    async def _execute(self) -> RunState:
        state = self.state
        for record in self.ws.log.read_run(state.id, state.last_seq + 1):
            apply_run(state, record)  # another process may have carried it on meanwhile
        if state.finished:
            return state
        if not state.compensating and state.status in ("running", "waiting"):
            frame = Frame("")
            with trio.move_on_after(max(0.0, self.time_left())) as deadline:
                if self.time_left() > 0:
                    await self.run_steps(self.playbook.steps, frame)
            if deadline.cancelled_caught or self.time_left() <= 0:
                self.failed, self.suspended = True, False
                self._run_error = {"class": "timeout", "message": (
                    "the run took longer than its policy.timeout "
                    f"({format_duration(self.playbook.policy.timeout_ms or 0)})")}
            if self.suspended and not self.state.cancel_requested:
                await self.ws.durable()
                self.ws.save_run_snapshot(self.state)
                return self.state
            if self.state.cancel_requested:
                await self.finish_cancel()
            elif not self.failed:
                try:
                    outputs = render(self.playbook.outputs, self.contexts(frame))
                except ExpressionError as exc:
                    self.failed = True
                    self._run_error = {"class": "expression", "message": str(exc)}
                else:
                    self.record("RunSucceeded", outputs=outputs)
        if (self.failed and not self.state.finished) or self.state.compensating:
            await self.fail_run()
        await self.ws.durable()
        self.ws.save_run_snapshot(self.state)
        return self.state

    def time_left(self) -> float:
        """Seconds until the playbook's ``policy.timeout`` for the whole run, counted from the
        run's start on the wall clock (a resumed run keeps its deadline)."""
        limit = self.playbook.policy.timeout_ms
        if limit is None or self.state.started_at is None:
            return math.inf
        elapsed = (clock.now() - clock.parse(self.state.started_at)).total_seconds()
        return limit / 1000 - elapsed

    async def fail_run(self) -> None:
        error = self._run_error or self.first_error()
        if self.playbook.on_failure == "halt":
            self.record("RunFailed", error=error, step=error.get("step"))
            return
        if not self.state.compensating:
            self.record("RunCompensating", error=error)
        ok = await self.compensate()
        if ok:
            self.record("RunCompensated")
        else:
            failed = [p for p, s in self.state.compensations.items() if s == "failed"]
            self.record("RunNeedsAttention",
                        reason=f"compensation failed for {', '.join(failed)}")

    def first_error(self) -> dict[str, Any]:
        for path in self.state.order:
            step = self.state.steps[path]
            if step.status == "failed" and not step.continued:
                return {**(step.error or {}), "step": path}
        return {"class": "unknown", "message": "the run failed"}

    async def finish_cancel(self) -> None:
        await self.compensate()
        self.record("RunCancelled")

    async def run_steps(self, steps: tuple[ir.Step, ...], frame: Frame) -> None:
        for step in steps:
            if self.should_stop():
                self.suspended = True  # stop at a step boundary: the run stays resumable
                return
            if self.suspended or self.cancel_requested():
                return
            await self.run_step(step, frame)
            path = frame.prefix + step.id
            frame.see(step.id, path, self.state.steps.get(path))

    def cancel_requested(self) -> bool:
        now = trio.current_time()
        if not self.state.cancel_requested and now - self._last_cancel_check > 0.5:
            self._last_cancel_check = now
            for record in self.ws.log.read_run(self.state.id, self.state.last_seq + 1):
                apply_run(self.state, record)
        return self.state.cancel_requested

    async def run_step(self, step: ir.Step, frame: Frame) -> None:
        path = frame.prefix + step.id
        done = self.state.steps.get(path)
        if done is not None and done.status in ("succeeded", "skipped", "failed", "cancelled"):
            if done.status == "failed" and not done.continued:
                self.failed = True
            if done.status != "cancelled" or self.state.cancel_requested:
                return
            # cancelled from outside (the process left the run, as a crash would): it
            # resumes like an interrupted attempt, with the same idempotency key
        if done is None and not self.condition(step, frame, path):
            self.record("StepSkipped", path=path, id=step.id)
            return
        most = self.ws.settings.limits.get("max_steps_per_run")
        if done is None and most is not None and sum(
                s.status != "skipped" for s in self.state.steps.values()) >= most:
            self.record("StepStarted", path=path, id=step.id, attempt=1, key="")
            self.record("StepFailed", path=path, id=step.id, error_class="limit",
                        message=f"the run has started {most} steps, the most "
                                "policy.limits.max_steps_per_run allows", attempts=1,
                        continued=False)
            self.failed = True
            return
        try:
            outputs, attempts = await self.attempts(step, frame, path)
        except Suspended:
            self.suspended = True
            return
        except StepFailure as failure:
            continued = self.continue_on_error(step, frame)
            self.record("StepFailed", path=path, id=step.id, error_class=failure.error_class,
                        message=str(failure), attempts=failure.attempts, continued=continued)
            if not continued:
                self.failed = True
            return
        except trio.Cancelled:
            self.record("StepCancelled", path=path, id=step.id)
            raise
        self.record("StepSucceeded", path=path, id=step.id, outputs=outputs, attempts=attempts)
        if step.checkpoint:
            await self.ws.durable()
            self.ws.save_run_snapshot(self.state)

    def condition(self, step: ir.Step, frame: Frame, path: str) -> bool:
        functions = {
            "success": lambda: not self.failed,
            "failure": lambda: self.failed,
            "always": lambda: True,
            "cancelled": lambda: self.state.cancel_requested,
        }
        if step.condition is None:
            return not self.failed
        try:
            if self.failed and not _checks_status(step.condition):
                return False  # an if: without a status function means success() && (...)
            return truthy(render(step.condition, self.contexts(frame), functions))
        except ExpressionError as exc:
            self.record("StepStarted", path=path, id=step.id, attempt=1, key="")
            raise StepFailure("expression", where(step.condition, exc), 1) from None

    def continue_on_error(self, step: ir.Step, frame: Frame) -> bool:
        try:
            return truthy(render(step.continue_on_error, self.contexts(frame)))
        except ExpressionError:
            return False

    async def attempts(self, step: ir.Step, frame: Frame, path: str) -> tuple[Any, int]:
        state = self.state.steps.get(path)
        attempt = state.attempts if state else 0
        resumed = bool(state and state.open_attempt)
        if state is not None and state.history and not resumed:
            last = state.history[-1]
            await self.sleep_until(last["at"], float(last.get("retry_in") or 0))
        key = self.idempotency_key(step, frame, path)
        retry = step.retry
        container = isinstance(step.body, (ir.Parallel, ir.Foreach, ir.Call))
        while True:
            if self.blocked(step, path):
                raise Suspended  # still waiting: nothing new to record
            escalation = self.state.escalations.get(path)
            if escalation is not None and not resumed:
                if escalation.action is None:
                    raise Suspended
                if escalation.action == "skip":
                    return escalation.outputs or {}, attempt
                if escalation.action == "abort":
                    raise StepFailure("aborted", "aborted by the operator", attempt)
            if not resumed:
                attempt += 1
            self.record("StepStarted", path=path, id=step.id, attempt=attempt, key=key,
                        **({"resumed": True} if resumed else {}))
            resumed = False
            try:
                if step.timeout_ms is not None and not container:
                    with trio.fail_after(step.timeout_ms / 1000):
                        result = await self.body(step, frame, path, attempt, key)
                else:
                    result = await self.body(step, frame, path, attempt, key)
                return self.reshape(step, frame, result), attempt
            except trio.TooSlowError:
                error: AdapterError = StepTimeout(
                    f"attempt {attempt} took longer than {step.timeout_ms} ms")
            except AdapterError as exc:
                error = exc
            except ExpressionError as exc:
                raise StepFailure("expression", str(exc), attempt) from None
            except (Suspended, StepFailure, LeaseLost):
                raise  # LeaseLost: the run is another worker's now
            except Exception as exc:  # a misbehaving adapter or a bug: this step fails, not serve
                raise StepFailure("internal", internal_message(exc), attempt) from None
            asks_operator = error.error_class == "needs_human" or (
                step.escalate is not None and attempt >= step.escalate.after_attempts)
            if asks_operator and not container:
                self.escalate(step, frame, path, attempt, error)
            can_retry = (error.retryable and error.error_class in retry.retry_on
                         and attempt < retry.max_attempts and not container)
            if not can_retry:
                raise StepFailure(error.error_class, str(error), attempt)
            rng = random.Random(f"{self.state.id}:{path}:{attempt}")
            delay = backoff_delay(retry, attempt, rng)
            if isinstance(error, RateLimited) and error.retry_after is not None:
                delay = max(delay, error.retry_after)
            self.record("StepAttemptFailed", path=path, attempt=attempt,
                        error_class=error.error_class, message=str(error), retry_in=delay)
            await trio.sleep(delay)

    def idempotency_key(self, step: ir.Step, frame: Frame, path: str) -> str:
        if step.idempotency_key is None:
            return f"{self.state.id}:{path}"
        try:
            return str(render(step.idempotency_key, self.contexts(frame)))
        except ExpressionError as exc:
            raise StepFailure("expression", str(exc), 1) from None

    def reshape(self, step: ir.Step, frame: Frame, result: Any) -> Any:
        if step.outputs is None:
            return result
        return render(step.outputs, {**self.contexts(frame), "result": result})

    async def body(self, step: ir.Step, frame: Frame, path: str, attempt: int,
                   key: str) -> Any:
        body = step.body
        if isinstance(body, ir.Uses):
            return await self.call_adapter(body, frame, step, path, attempt, key)
        if isinstance(body, ir.SetValues):
            return render(body.values, self.contexts(frame))
        if isinstance(body, ir.Parallel):
            return await self.parallel(body, frame, path)
        if isinstance(body, ir.Foreach):
            return await self.foreach(body, frame, path)
        if isinstance(body, ir.Call):
            return await self.call_playbook(body, frame, path)
        if isinstance(body, ir.Gate):
            return await self.gate(path, path, body.message, body.show, body.timeout_ms,
                                   body.on_timeout, frame)
        if isinstance(body, ir.Wait):
            return await self.wait(body, path, frame)
        if isinstance(body, ir.Emit):
            return self.emit(body, path, frame)
        if isinstance(body, ir.Agent):
            from aiosrun.runtime.coordinator.agent_step import run_agent

            return await run_agent(self, step, body, frame, path, attempt)
        assert isinstance(body, ir.Llm)
        return await run_llm(self, body, frame, path, attempt)


def _checks_status(value: ir.Value) -> bool:
    """Whether a condition calls a status function anywhere in its expressions."""
    if isinstance(value, ir.Expr):
        return uses_status_function(value.source)
    if isinstance(value, ir.Interp):
        return any(isinstance(part, ir.Expr) and uses_status_function(part.source)
                   for part in value.parts)
    return False
