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
import datetime as dt
import fcntl
import fnmatch
import math
import os
import random
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from aiosrun.adapters.base import (
    AdapterError,
    CallContext,
    PermanentError,
    RateLimited,
    StepTimeout,
)
from aiosrun.dsl import ir
from aiosrun.dsl.errors import ExpressionError
from aiosrun.dsl.render import render, render_template
from aiosrun.dsl.values import truthy
from jsonschema import Draft202012Validator

from . import clock
from .eventlog import NewEvent, Record
from .llm_step import Models, run_llm
from .state import RunState, apply_run
from .workspace import Workspace

OnRecord = Callable[[Record, RunState], None]


class StepFailure(Exception):
    def __init__(self, error_class: str, message: str, attempts: int) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.attempts = attempts


class Suspended(Exception):
    """The run waits for the operator (a gate or an escalation): stop here, durably."""


class GateRejected(PermanentError):
    error_class = "rejected"


def new_run_id() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def backoff_delay(retry: ir.Retry, attempt: int, rng: random.Random) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): exponential, capped, jittered."""
    base = min(retry.initial_delay_ms * retry.backoff ** (attempt - 1), retry.max_delay_ms)
    if retry.jitter == "full":
        base = rng.uniform(0, base)
    elif retry.jitter == "equal":
        base = base / 2 + rng.uniform(0, base / 2)
    return base / 1000


@dataclass
class Frame:
    """A sequence of steps sharing what they see: the top level, or one foreach item.

    ``view`` is the ``steps`` context of this frame, kept up to date as steps end, so building
    the contexts of a step costs the same at step 3 as at step 3,000."""

    prefix: str
    visible: dict[str, str] = field(default_factory=dict)  # step id -> path
    item: tuple[str, Any, int] | None = None  # (name, value, index)
    view: dict[str, Any] = field(default_factory=dict)  # step id -> {outputs, outcome, ...}

    def child(self, prefix: str, item: tuple[str, Any, int] | None = None) -> Frame:
        return Frame(prefix, dict(self.visible), item or self.item, dict(self.view))

    def see(self, step_id: str, path: str, state: Any) -> None:
        self.visible[step_id] = path
        if state is not None:
            self.view[step_id] = {"outputs": state.outputs, "outcome": state.outcome,
                                  "conclusion": state.conclusion, "attempts": state.attempts}


class Lease:
    """An exclusive ``flock`` per run while a process executes it; the kernel drops it when the
    process dies, which is how ``resume`` tells a crashed run from a running one."""

    def __init__(self, folder: Path, run_id: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(folder / f"{run_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


class Runner:
    def __init__(self, workspace: Workspace, playbook: ir.Playbook, state: RunState,
                 on_record: OnRecord | None = None) -> None:
        self.ws = workspace
        self.playbook = playbook
        self.state = state
        self.on_record = on_record
        self.failed = any(s.status == "failed" and not s.continued
                          for s in state.steps.values())
        self.steps_by_template = {step_template(s.path): s for s in playbook.walk()}
        self._last_cancel_check = 0.0
        self.suspended = False
        self._run_error: dict[str, Any] | None = None  # a failure of the run's own outputs
        self.should_stop: Callable[[], bool] = lambda: False  # serve's shutdown
        self.models = Models(workspace)
        self._memory_access: Any = None
        self.approval_patterns = (tuple(workspace.settings.require_approval)
                                  + playbook.policy.require_approval)

    # ---- recording ------------------------------------------------------------

    def record(self, kind: str, **data: Any) -> Record:
        masked = self.ws.masker.data(data)  # secrets never reach the log
        record = self.ws.log.append(NewEvent(kind, masked, run=self.state.id))
        apply_run(self.state, record)
        if self.on_record is not None:
            self.on_record(record, self.state)
        return record

    # ---- the run ------------------------------------------------------------

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
        if state.finished:
            return state
        if not state.compensating and state.status in ("running", "waiting"):
            frame = Frame("")
            await self.run_steps(self.playbook.steps, frame)
            if self.suspended and not self.state.cancel_requested:
                self.ws.log.sync()
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
        self.ws.log.sync()
        self.ws.save_run_snapshot(self.state)
        return self.state

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

    # ---- steps ------------------------------------------------------------

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
            return
        if done is None and not self.condition(step, frame, path):
            self.record("StepSkipped", path=path, id=step.id)
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
            self.ws.log.sync()
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
            return truthy(render(step.condition, self.contexts(frame), functions))
        except ExpressionError as exc:
            self.record("StepStarted", path=path, id=step.id, attempt=1, key="")
            raise StepFailure("expression", _where(step.condition, exc), 1) from None

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

    def escalate(self, step: ir.Step, frame: Frame, path: str, attempt: int,
                 error: AdapterError) -> None:
        """Hand the step to the operator (``aiosrun inbox``/``resolve``) and stop the run."""
        args: Any = None
        if isinstance(step.body, ir.Uses):
            try:
                args = render(step.body.args, self.contexts(frame))
            except ExpressionError:
                args = None
        message = str(error)
        if step.escalate is not None and step.escalate.message:
            with contextlib.suppress(ExpressionError):
                message = f"{render_text(step.escalate.message, self.contexts(frame))} " \
                          f"({error.error_class}: {error})"
        self.record("StepAttemptFailed", path=path, attempt=attempt,
                    error_class=error.error_class, message=str(error), escalated=True)
        self.record("EscalationOpened", path=path, error_class=error.error_class,
                    message=message, attempts=attempt, args=args)
        raise Suspended

    def blocked(self, step: ir.Step, path: str) -> bool:
        """Whether the step still waits for the operator, an event or a timer."""
        now = clock.now()
        for gate_id in (path, f"{path}#approval"):
            gate = self.state.gates.get(gate_id)
            if gate is not None and gate.decision is None:
                due = gate.timeout_at is not None and now >= clock.parse(gate.timeout_at)
                return gate.escalated or not due
        wait = self.state.waits.get(path)
        if wait is not None and wait.satisfied is None:
            due = wait.due_at is not None and now >= clock.parse(wait.due_at)
            timed_out = wait.timeout_at is not None and now >= clock.parse(wait.timeout_at)
            return not (due or timed_out)
        return False

    async def wait(self, body: ir.Wait, path: str, frame: Frame) -> Any:
        """A durable wait for an event (woken by the dispatcher), a duration or a time."""
        wait = self.state.waits.get(path)
        if wait is None:
            now = clock.now()
            due_at = None
            if body.duration_ms is not None:
                due_at = clock.stamp(now + dt.timedelta(milliseconds=body.duration_ms))
            elif body.until is not None:
                until = str(render(body.until, self.contexts(frame)))
                try:
                    moment = dt.datetime.fromisoformat(until.replace("Z", "+00:00"))
                except ValueError:
                    raise PermanentError(f"wait until: '{until}' is not an RFC 3339 time") \
                        from None
                due_at = clock.stamp(moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC))
            timeout_at = None
            if body.timeout_ms is not None:
                timeout_at = clock.stamp(now + dt.timedelta(milliseconds=body.timeout_ms))
            self.record("WaitOpened", path=path, event=body.event, due_at=due_at,
                        timeout_at=timeout_at)
            wait = self.state.waits[path]
        if wait.satisfied is not None:
            return wait.satisfied
        now = clock.now()
        if wait.due_at is not None and now >= clock.parse(wait.due_at):
            self.record("WaitSatisfied", path=path, by="timer", event=None, data=None,
                        seq=None)
            return self.state.waits[path].satisfied
        if wait.timeout_at is not None and now >= clock.parse(wait.timeout_at):
            raise StepTimeout(f"no '{wait.event}' event arrived before {wait.timeout_at}")
        raise Suspended

    def emit(self, body: ir.Emit, path: str, frame: Frame) -> Any:
        data = render(body.data, self.contexts(frame))
        seq = self.emit_event(body.event, data, f"{self.state.id}:{path}", path)
        return {"event": body.event, "seq": seq}

    def emit_event(self, event: str, data: Any, key: str, path: str) -> int:
        """Append an event for the dispatcher, once per key (a resume re-uses it)."""
        seen = self.ws.workspace_state().event_keys.get(key)
        if seen is not None:
            return int(seen)
        record = self.ws.log.append(NewEvent("EventEmitted", self.ws.masker.data({
            "event": event, "data": data, "key": key,
            "source": {"run": self.state.id, "step": path}}), cause=self.state.last_seq))
        return record.seq

    async def gate(self, gate_id: str, path: str, message: Any, show: Any,
                   timeout_ms: int | None, on_timeout: str, frame: Frame) -> dict[str, Any]:
        """Open the gate, or read its decision; a gate still open suspends the run."""
        gate = self.state.gates.get(gate_id)
        if gate is None:
            contexts = self.contexts(frame)
            rendered = render(message, contexts) if isinstance(message, ir.VALUE_TYPES) \
                else message
            shown = render(show, contexts) if isinstance(show, ir.VALUE_TYPES) else show
            timeout_at = None
            if timeout_ms is not None:
                timeout_at = clock.stamp(clock.now() + dt.timedelta(milliseconds=timeout_ms))
            self.record("GateOpened", gate=gate_id, path=path, message=str(rendered),
                        show=shown, timeout_at=timeout_at, on_timeout=on_timeout)
            raise Suspended
        due = gate.timeout_at is not None and clock.now() >= clock.parse(gate.timeout_at)
        if gate.decision is None and due and not gate.escalated:
            if gate.on_timeout == "escalate":
                self.record("GateEscalated", gate=gate_id)
            else:
                decision = "approved" if gate.on_timeout == "approve" else "rejected"
                self.record("GateDecided", gate=gate_id, decision=decision,
                            comment=f"no decision within the timeout ({gate.on_timeout})",
                            by="timeout")
        if gate.decision is None:
            raise Suspended
        if gate.decision != "approved":
            raise GateRejected(f"gate '{gate_id}' was rejected"
                               + (f": {gate.comment}" if gate.comment else ""))
        return {"decision": gate.decision, "comment": gate.comment,
                "decided_at": gate.decided_at}

    async def sleep_until(self, at: str, delay: float) -> None:
        """Finish a retry delay that a crash interrupted, measured on the wall clock."""
        remaining = (clock.parse(at) - clock.now()).total_seconds() + delay
        if remaining > 0:
            await trio.sleep(remaining)

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
        assert isinstance(body, ir.Llm)
        return await run_llm(self, body, frame, path, attempt)

    async def call_adapter(self, body: ir.Uses, frame: Frame, step: ir.Step, path: str,
                           attempt: int, key: str, *, policy: bool = True) -> Any:
        adapter, action, action_name = self.ws.registry.action(body.action)
        args = render(body.args, self.contexts(frame))
        if policy and any(fnmatch.fnmatchcase(body.action, p) for p in self.approval_patterns):
            await self.gate(f"{path}#approval", path, f"Approve {body.action}?",
                            {"action": body.action, "with": args}, None, "reject", frame)
        problem = next(iter(Draft202012Validator(dict(action.args)).iter_errors(args)), None)
        if problem is not None:
            where = "/".join(str(p) for p in problem.absolute_path) or "arguments"
            raise PermanentError(f"{body.action}: {where}: {problem.message}")
        ctx = CallContext(
            idempotency_key=key, run_id=self.state.id, step_id=step.id, step_path=path,
            attempt=attempt, workspace=self.ws.root, state_dir=self.ws.state_dir,
            settings=self.ws.settings.adapter(adapter.name), secrets=self.ws.secrets,
            emit=lambda event, data, key: self.emit_event(event, data, key, path),
            memory=self.memory_access() if adapter.name == "memory" else None,
        )
        return dict(await adapter.call(action_name, args, ctx))

    def memory_access(self) -> Any:
        from .memory import PlaybookMemory

        if self._memory_access is None:
            self._memory_access = PlaybookMemory(self.ws, self.playbook.memory, self.state.id)
        return self._memory_access

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
            raise PermanentError(f"foreach items must be a list, got {type(items).__name__}")
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
                raise PermanentError(f"foreach item {item_frame.prefix} did not succeed")
            results.append({s.id: self.state.steps[item_frame.prefix + s.id].outputs
                            for s in body.steps})
        return results

    def _frame_failed(self, body: ir.Foreach, frame: Frame) -> bool:
        return any(self._failed(frame.prefix + step.id) for step in body.steps)

    async def call_playbook(self, body: ir.Call, frame: Frame, path: str) -> Any:
        flat = path.replace("/", ".").replace("[", "-").replace("]", "")
        child_id = f"{self.state.id}.{flat}"
        inputs = render(body.args, self.contexts(frame))
        child = start_or_load(self.ws, body.playbook, inputs, run_id=child_id,
                              parent=(self.state.id, path), cause=self.state.last_seq)
        state = await Runner(self.ws, child[0], child[1], self.on_record).execute()
        if state.status != "succeeded":
            raise PermanentError(f"child run {child_id} ended {state.status}")
        return state.outputs

    # ---- compensation ------------------------------------------------------------

    async def compensate(self) -> bool:
        ok = True
        for path in reversed(list(self.state.completed)):
            step = self.steps_by_template.get(step_template(path))
            if step is None or step.compensate is None:
                continue
            if self.state.compensations.get(path) == "succeeded":
                continue
            self.record("CompensationStarted", path=path)
            try:
                outputs = await self.run_compensation(step, step.compensate, path)
            except StepFailure as failure:
                self.record("CompensationFailed", path=path, error_class=failure.error_class,
                            message=str(failure))
                ok = False
                continue
            self.record("CompensationSucceeded", path=path, outputs=outputs)
        return ok

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
            if not error.retryable or attempt >= undo.retry.max_attempts:
                raise StepFailure(error.error_class, str(error), attempt)
            await trio.sleep(backoff_delay(undo.retry, attempt,
                                           random.Random(f"{key}:{attempt}")))

    # ---- contexts ------------------------------------------------------------

    def contexts(self, frame: Frame) -> dict[str, Any]:
        env = {name: os.environ[name] for name in self.ws.settings.env_allow
               if name in os.environ}
        contexts: dict[str, Any] = {
            "inputs": self.state.inputs or {},
            "steps": frame.view,
            "run": {"id": self.state.id, "playbook": self.playbook.name,
                    "version": self.playbook.digest[:12], "attempt": 1},
            "event": self.state.trigger or {},
            "vars": self.ws.settings.vars,
            "secrets": self.ws.secrets,
            "env": env,
        }
        if frame.item is not None:
            name, value, index = frame.item
            contexts[name] = value
            contexts["index"] = index
        return contexts


def render_text(text: str, contexts: Mapping[str, Any]) -> str:
    return str(render_template(text, contexts))


def step_template(path: str) -> str:
    """``match[3]/record`` -> ``match/record``: the step in the playbook a path runs."""
    out = []
    depth = 0
    for ch in path:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _where(value: ir.Value, exc: ExpressionError) -> str:
    if isinstance(value, ir.Expr):
        span = value.span
        return f"{span.file}:{span.line}:{span.col}: {exc}"
    return str(exc)


def start_or_load(workspace: Workspace, name: str, inputs: Mapping[str, Any] | None, *,
                  run_id: str | None = None, parent: tuple[str, str] | None = None,
                  version: Any = None, trigger: Any = None,
                  cause: int | None = None) -> tuple[ir.Playbook, RunState]:
    """The playbook version and state of a run, starting it (``RunStarted``) if it is new."""
    from .inputs import check_inputs

    if run_id is not None:
        existing = workspace.run_state(run_id)
        if existing.playbook:
            ws_state = workspace.workspace_state()
            playbook = workspace.playbook(existing.digest, ws_state.versions[existing.digest].ir)
            return playbook, existing
    ws_state = workspace.workspace_state()
    if version is None:
        digest = ws_state.current.get(name)
        if digest is None:
            raise PermanentError(f"no applied playbook named '{name}' (run `aiosrun apply`)")
        version = ws_state.versions[digest]
    playbook = workspace.playbook(version.digest, version.ir)
    checked = check_inputs(playbook, dict(inputs or {}))
    state = RunState(run_id or new_run_id())
    record = workspace.log.append(NewEvent(
        "RunStarted", workspace.masker.data({
            "playbook": playbook.name, "digest": playbook.digest, "inputs": checked,
            "parent": parent[0] if parent else None,
            "parent_step": parent[1] if parent else None, "trigger": trigger}),
        run=state.id, cause=cause))
    apply_run(state, record)
    return playbook, state
