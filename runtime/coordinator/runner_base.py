"""The part of a runner every other part stands on: recording, contexts, adapter calls.

:class:`RunnerBase` holds one run's state and writes its records; the mixins of
:mod:`suspension`, :mod:`containers` and :mod:`compensation` and the
:class:`~aiosrun.runtime.coordinator.interpreter.Runner` build on it.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from typing import Any

from aiosrun.adapters.base import (
    CallContext,
    PermanentError,
)
from aiosrun.dsl import ir
from aiosrun.dsl.diagnostics import schema_message
from aiosrun.dsl.render import render
from aiosrun.runtime.coordinator.frames import (
    Frame,
)
from aiosrun.runtime.coordinator.models import Models
from aiosrun.runtime.log.eventlog import NewEvent, Record
from aiosrun.runtime.log.projections import RunState, apply_run
from aiosrun.runtime.workspace import Workspace
from jsonschema import Draft202012Validator

OnRecord = Callable[[Record, RunState], None]


class RunnerBase:
    def __init__(self, workspace: Workspace, playbook: ir.Playbook, state: RunState,
                 on_record: OnRecord | None = None) -> None:
        self.ws = workspace
        self.playbook = playbook
        self.state = state
        self.on_record = on_record
        self.failed = any(s.status == "failed" and not s.continued
                          for s in state.steps.values())
        self.steps_by_template = playbook.by_path  # a playbook's paths are templates
        self._last_cancel_check = 0.0
        self.suspended = False
        self._run_error: dict[str, Any] | None = None  # a failure of the run's own outputs
        self.should_stop: Callable[[], bool] = lambda: False  # serve's shutdown
        self.models = Models(workspace)
        self._memory_access: Any = None
        self.approval_patterns = (tuple(workspace.settings.require_approval)
                                  + playbook.policy.require_approval)

    def record(self, kind: str, **data: Any) -> Record:
        masked = self.ws.masker.data(data)  # secrets never reach the log
        record = self.ws.log.append(NewEvent(kind, masked, run=self.state.id),
                                    durable=kind != "StepStarted")
        apply_run(self.state, record)
        if self.on_record is not None:
            self.on_record(record, self.state)
        return record

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
            raise PermanentError(f"{body.action}: {where}: {schema_message(problem)}")
        doubles = self.ws.doubles
        if doubles is not None:
            mocked = await doubles.call(body.action, step.id, path, attempt, args)
            if mocked is not None:
                return mocked
        ctx = CallContext(
            idempotency_key=key, run_id=self.state.id, step_id=step.id, step_path=path,
            attempt=attempt, workspace=self.ws.root, state_dir=self.ws.state_dir,
            settings=self.ws.settings.adapter(adapter.name), secrets=self.ws.secrets,
            emit=lambda event, data, key: self.emit_event(event, data, key, path),
            memory=self.memory_access() if adapter.name == "memory" else None,
            mask=self.ws.masker.text, journal=self.ws.store.journal,
        )
        return dict(await adapter.call(action_name, args, ctx))

    def memory_access(self) -> Any:
        from aiosrun.runtime.memory.store import PlaybookMemory

        if self._memory_access is None:
            self._memory_access = PlaybookMemory(self.ws, self.playbook.memory, self.state.id)
        return self._memory_access

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

    async def execute(self) -> RunState:
        raise NotImplementedError  # the interpreter's

    async def run_step(self, step: ir.Step, frame: Frame) -> None:
        raise NotImplementedError  # the interpreter's

    async def run_steps(self, steps: tuple[ir.Step, ...], frame: Frame) -> None:
        raise NotImplementedError  # the interpreter's

    async def call_playbook(self, body: ir.Call, frame: Frame, path: str) -> Any:
        raise NotImplementedError  # the containers'

    async def gate(self, gate_id: str, path: str, message: Any, show: Any,
                   timeout_ms: int | None, on_timeout: str, frame: Frame) -> dict[str, Any]:
        raise NotImplementedError  # the suspensions'
