"""The Engine: the one Python API of a workspace (DESIGN section 9).

The coordinator (the interpreter, event dispatch) is imported by the methods that execute
runs, so a command that only reads (``status``, ``runs``, ``inbox``) does not load it.

Everything a person can do with the CLI a program can do here, and the CLI, the HTTP server
and the MCP server do it through this class alone::

    async with Engine.open("shop") as engine:
        run = await engine.start("customer-onboarding", inputs={...})
        if run.status == "waiting":
            run = await engine.approve(run.id, "review", comment="ok")

Methods are async (trio) and return the frozen records of :mod:`aiosrun.runtime.results`;
errors are those of :mod:`aiosrun.runtime.errors`. Every decision that must happen once
(a run started under an id or key, a gate decided, an escalation settled, an event id) is
checked and recorded in one step under the log's lock, so several Engines in several
processes may drive one workspace. Runs started with ``wait=False``, and the runs that an
event triggers, execute in the Engine's nursery; leaving the ``async with`` waits for them
(a cancelled exit leaves them resumable: the log has every step they finished).
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import trio
from aiosrun.dsl import ir
from aiosrun.dsl.errors import AiosrunError
from aiosrun.dsl.names import EVENT_NAME
from aiosrun.runtime import clock, reading
from aiosrun.runtime.errors import BadRequest, Conflict, EngineError, NotFound
from aiosrun.runtime.log.eventlog import NewEvent, Record
from aiosrun.runtime.log.projections import RunState, apply_run, fold_run
from aiosrun.runtime.log.storage import StorageError
from aiosrun.runtime.log.store import RunLease
from aiosrun.runtime.log.timeline import timeline_of
from aiosrun.runtime.memory.api import MemoryAPI
from aiosrun.runtime.results import (
    ApplyResult,
    DoctorReport,
    EmitResult,
    InboxItem,
    JsonResult,
    MigrateReport,
    Run,
    RunAt,
    RunListing,
)
from aiosrun.runtime.versions import file_version, plan_apply
from aiosrun.runtime.workspace import Workspace

Observer = Callable[[Record], None]
RESOLVE_ACTIONS = ("retry", "skip", "abort")
SUBSCRIBE_POLL = 0.02  # seconds between looks at the log when nothing new has come


@dataclass
class _Execution:
    """A run executing in the Engine's nursery: :meth:`Engine.wait` answers with the state
    it ended in, without folding the run from the log again."""

    done: trio.Event
    final: RunState | None = None


class Engine:
    """An opened workspace and the runs this process executes in it."""

    def __init__(self, workspace: Workspace, nursery: trio.Nursery) -> None:
        self.ws = workspace
        self._nursery = nursery
        self.observers: list[Observer] = []
        self.notices: list[str] = []  # what a front end should tell its user
        self.dispatched: list[Run] = []  # runs that events started or woke, in order
        self.serving = False  # this process runs `serve`: it dispatches events itself
        self.stopping = False
        self.stop_requested = trio.Event()  # set when `serve` is told to stop (a signal)
        self.run_slots = trio.CapacityLimiter(math.inf)  # runs this Engine executes at once
        self._running: dict[str, _Execution] = {}  # runs executing in the nursery now
        self._dispatching = False
        self._dispatch_again = False
        self.memory = MemoryAPI(workspace)
        self._fsync_pending = False
        if workspace.log.fsync_policy == "group":
            workspace.log.fsync_hook = self._fsync_soon
        self.notices.extend(reading.notices_of(workspace))

    @classmethod
    @asynccontextmanager
    async def open(cls, path: str | os.PathLike[str] | None = None, *,
                   record_models: bool = False) -> AsyncIterator[Engine]:
        """Open the workspace at ``path`` (or the one found from the current folder upwards,
        or named by ``AIOS_WORKSPACE``), for the time of the ``async with``."""
        ws = reading.open_workspace(path)
        ws.record_models = ws.record_models or record_models
        try:
            async with trio.open_nursery() as nursery:
                engine = cls(ws, nursery)
                yield engine
            engine.close_cleanly()
        except BaseExceptionGroup as group:
            raise _single(group) from None
        finally:
            ws.log.fsync_hook = None
            ws.close()

    def _fsync_soon(self) -> None:
        """The log's group window passed with appends not yet durable: fsync them in a
        worker thread, so no run or request waits for the disk unless it asked to."""
        if not self._fsync_pending:
            self._fsync_pending = True
            self._nursery.start_soon(self._background_fsync)

    async def _background_fsync(self) -> None:
        try:
            await self.ws.durable()
        except StorageError as exc:  # the next caller that needs durability hears it
            self.notices.append(f"warning: {exc}")
        finally:
            self._fsync_pending = False

    def close_cleanly(self) -> None:
        """Make what this Engine appended durable and the next opening quick."""
        self.ws.log.fsync_hook = None
        self.ws.log.sync()
        self.ws.save_workspace_snapshot()

    @property
    def root(self) -> Path:
        return self.ws.root

    @property
    def last_seq(self) -> int:
        """The seq of the newest record this Engine has seen in the log."""
        return self.ws.log.last_seq

    async def sync(self) -> None:
        """Make every record appended so far durable (fsynced), whatever the log's fsync
        policy: what a caller acknowledges after this survives a crash or a power cut."""
        await self.ws.durable()

    # ---- playbooks ----------------------------------------------------------------------

    async def apply(self, paths: Sequence[str | os.PathLike[str]] | None = None,
                    dry_run: bool = False) -> ApplyResult:
        """Validate playbooks and record new and changed versions (like ``terraform apply``);
        raises :class:`PlaybookError` with every problem found."""
        changes, events = plan_apply(self.ws, [Path(p) for p in paths or ()], Path.cwd())
        if events and not dry_run:
            self.ws.log.append_many(events)
            self.ws.log.sync()
            self.ws.save_workspace_snapshot()
            for event in events:  # decoded (a large one cached) now, not at its first run
                if event.type == "PlaybookApplied":
                    self.ws.playbook(event.data["digest"])
        return ApplyResult(tuple(changes), dry_run)

    async def plan(self, playbook: str | os.PathLike[str]) -> JsonResult:
        """What one run would do: steps, gates (policy gates too), tiers, worst-case cost."""
        from aiosrun.runtime.coordinator.plan import plan_of

        return JsonResult(plan_of(self._playbook(playbook), self.ws.settings.data,
                                  self.ws.root))

    @staticmethod
    def plan_file(path: str | os.PathLike[str],
                  catalog: Mapping[str, Mapping[str, object]]) -> JsonResult:
        """A playbook file's plan with no workspace around it (every setting at its
        default); raises :class:`PlaybookError` when the file is invalid."""
        from aiosrun.dsl.loader import load_file
        from aiosrun.dsl.validate import validate_document
        from aiosrun.runtime.coordinator.plan import plan_of

        playbook = validate_document(load_file(Path(path)), dict(catalog), [])
        return JsonResult(plan_of(playbook, {}, Path.cwd()))

    def _playbook(self, target: str | os.PathLike[str]) -> ir.Playbook:
        path = Path(target)
        if path.suffix in (".yaml", ".yml") and path.is_file():
            from aiosrun.dsl.loader import load_file
            from aiosrun.dsl.validate import validate_document

            return validate_document(load_file(path), self.ws.registry.catalog(),
                                     list(self.ws.settings.data.get("models") or {}),
                                     self.ws.root / "agents",
                                     list(self.ws.settings.data.get("mcp") or {}))
        digest = self.ws.workspace_state(copy=False).current.get(str(target))
        if digest is None:
            raise NotFound(f"no playbook file or applied playbook named '{target}'")
        playbook: ir.Playbook = self.ws.playbook(digest)
        return playbook

    async def playbook_versions(self) -> JsonResult:
        """Every playbook applied so far: its current version and all its versions."""
        from aiosrun.runtime.overview import playbooks

        return JsonResult({"playbooks": playbooks(self.ws)})

    async def version_text(self, digest: str) -> str:
        """A version's compiled playbook as text (sorted JSON), for diffs; ``NotFound`` for an
        unknown digest."""
        from aiosrun.runtime.overview import version_text

        text = version_text(self.ws, digest)
        if text is None:
            raise NotFound(f"no playbook version '{digest}'")
        return text

    async def spend(self) -> JsonResult:
        """Model spend in USD per UTC day and per playbook, and the workspace's budget."""
        from aiosrun.runtime.overview import spend

        return JsonResult(spend(self.ws))

    # ---- runs ---------------------------------------------------------------------------

    async def start(self, playbook: str | os.PathLike[str],
                    inputs: Mapping[str, Any] | None = None, *,
                    idempotency_key: str | None = None, wait: bool = True,
                    event: Mapping[str, Any] | None = None) -> Run:
        """Start a run of an applied playbook (by name) or of a playbook file.

        With ``wait`` (the default) the run executes here until it ends or waits; without,
        this returns once the run is recorded and the run executes in the Engine's nursery.
        A start with an ``idempotency_key`` already used returns that run instead. ``event``
        starts it as its trigger would: the payload is ``event`` in expressions and gives
        the inputs it names (unless ``inputs`` are given)."""
        version = None
        name = os.fspath(playbook)
        path = Path(name)
        if path.suffix in (".yaml", ".yml") and path.is_file():
            version = file_version(self.ws, path)
            name = version.name
        from aiosrun.runtime.coordinator.frames import event_context
        from aiosrun.runtime.coordinator.runs import new_run_id, start_run

        trigger = None
        if event is not None:
            triggers = self._playbook(name).triggers.events
            trigger = event_context({"event": triggers[0] if triggers else "manual",
                                     "data": dict(event)})
            if inputs is None:
                declared = self._playbook(name).inputs
                inputs = {k: v for k, v in event.items() if k in declared}
        run_id = new_run_id()
        lease = self.ws.store.lease(run_id)  # before RunStarted: serve must not take the
        lease.try_acquire()  # new run for a crashed one and execute it first
        try:
            loaded, state, started = start_run(self.ws, name, inputs, version=version,
                                               idempotency_key=idempotency_key,
                                               trigger=trigger, run_id=run_id)
        except BaseException:
            lease.discard()
            raise
        if not started:
            lease.discard()
            return Run.of(state)
        if not wait:
            self._in_background(loaded, state, lease)
            return Run.of(state)
        return Run.of(await self._execute(loaded, state, lease=lease))

    async def wait(self, run_id: str) -> Run:
        """The run once this Engine's execution of it (``start(wait=False)``) has ended."""
        execution = self._running.get(run_id)
        if execution is not None:
            await execution.done.wait()
            final = execution.final
            if final is not None and final.finished:  # nothing can change it any more
                return Run.of(final)
        return await self.get(run_id)

    async def get(self, run_id: str) -> Run:
        return reading.run(self.ws, run_id)

    async def runs(self, status: str | None = None) -> list[RunListing]:
        """Every run, oldest first (``status``: only those)."""
        return reading.runs(self.ws, status)

    async def playbooks(self) -> list[dict[str, Any]]:
        """The applied playbooks: name, version, description, triggers and input schemas."""
        state = self.ws.workspace_state()
        out = []
        for name, digest in sorted(state.current.items()):
            playbook: ir.Playbook = self.ws.playbook(digest)
            out.append({"name": name, "version": digest[:12],
                        "description": playbook.description,
                        "events": list(playbook.triggers.events),
                        "inputs": ir.thaw(playbook.inputs)})
        return out

    async def mcp_tools(self, server: str) -> list[dict[str, Any]]:
        """Ask the MCP server ``server`` of aios.yaml for its tools and cache them (so
        ``validate`` checks ``uses: SERVER.TOOL`` arguments offline)."""
        from aiosrun.adapters.base import PermanentError
        from aiosrun.adapters.mcp import list_tools

        servers = self.ws.settings.data.get("mcp") or {}
        if server not in servers:
            raise NotFound(f"no MCP server '{server}' in aios.yaml (mcp: "
                           f"{', '.join(sorted(servers)) or 'none'})")
        http = self.ws.settings.adapter("http")
        try:
            tools = await list_tools(server, servers[server], self.ws.root, self.ws.state_dir,
                                     self.ws.secrets,
                                     tuple(str(h) for h in http.get("allow_hosts") or ()))
        except PermanentError as exc:
            raise EngineError(self.ws.masker.text(str(exc))) from None
        from aiosrun.runtime.registry import Registry

        self.ws.registry = Registry.discover(self.ws.root)  # the new tools are actions now
        return tools

    async def replay(self, run_id: str, at: int | None = None) -> RunAt:
        """The run's state rebuilt from the log, now or as it was at seq ``at``."""
        self._state(run_id)
        return RunAt.of(self.ws.run_state(run_id, at if at is not None else 10**18))

    async def timeline(self, run_id: str) -> JsonResult:
        """The run's history as a tree: what started it, each record with its time, and its
        child runs under the steps that called them."""
        self._state(run_id)
        runs = self.ws.workspace_state().runs
        return JsonResult(timeline_of(
            lambda rid: self.ws.log.read_run(rid),
            lambda rid: [r.id for r in runs.values() if r.parent == rid], run_id))

    async def cancel(self, run_id: str) -> Run:
        """Stop a run and compensate its completed steps. When another process executes it,
        the request is recorded and that process stops at its next step (``cancel_requested``
        is then true in the result)."""
        state = self._state(run_id)
        if state.finished:
            raise Conflict(f"run {run_id} has already ended ({state.status})")
        record = self.ws.log.append(NewEvent("RunCancelRequested", {}, run=run_id))
        apply_run(state, record)
        return Run.of(await self._execute(self.ws.playbook(state.digest), state, busy_ok=True))

    @overload
    async def resume(self, run_id: str) -> Run: ...

    @overload
    async def resume(self, run_id: None = None) -> list[Run]: ...

    async def resume(self, run_id: str | None = None) -> Run | list[Run]:
        """Continue a run a crash left behind (completed steps are not run again), or, with
        no id, every such run and every run whose gate or wait timer is due."""
        if run_id is not None:
            state = self._state(run_id)
            if state.finished:
                return Run.of(state)
            return Run.of(await self._execute(self.ws.playbook(state.digest), state))
        from aiosrun.runtime.coordinator.dispatch import due_timers

        first = len(self.dispatched)
        results: dict[str, Run] = {}
        now = clock.now()
        for summary in list(self.ws.workspace_state().runs.values()):
            if summary.parent is not None or summary.status not in ("running", "failed",
                                                                     "waiting"):
                continue
            state = self.ws.run_state(summary.id)
            if state.finished:
                continue
            if state.status == "waiting":
                try:
                    limit = self.ws.playbook(state.digest).policy.timeout_ms
                except Exception:  # a version that cannot be loaded: execution fails it alone
                    limit = None
                if not due_timers(state, now, limit):
                    continue
            final = await self._try_execute(None, state)  # None: loaded inside, isolated
            if final is None:
                self.notices.append(f"run {summary.id} is being executed by another process; "
                                    "skipped")
                continue
            results[final.id] = Run.of(final)
        for run in self.dispatched[first:]:
            results[run.id] = run
        return list(results.values())

    async def fork(self, run_id: str, *, from_step: str | None = None,
                   at_seq: int | None = None) -> Run:
        """A new run of the playbook's current version whose steps before ``from_step`` (or
        completed by ``at_seq``) are taken from ``run_id``, outputs and all, without
        executing them; the old run is left as it was. ``Conflict`` when the new version
        lacks a reused step or the old inputs no longer fit."""
        from aiosrun.runtime.coordinator.fork import fork_run

        self._state(run_id)
        playbook, state = fork_run(self.ws, run_id, from_step, at_seq)
        return Run.of(await self._execute(playbook, state))

    # ---- the operator's decisions ---------------------------------------------------------

    async def inbox(self) -> list[InboxItem]:
        """Everything that waits for the operator, oldest first: gates, escalations, waits,
        and events a triggered playbook rejected (until dismissed)."""
        return reading.inbox(self.ws)

    async def dismiss(self, item_id: str) -> None:
        """Take a rejected event (``SEQ-PLAYBOOK``) off the inbox: the operator has seen it."""
        known = self.ws.workspace_state(copy=False).rejected
        if item_id not in known:
            raise NotFound(f"no rejected event '{item_id}' in the inbox (listed: "
                           f"{', '.join(known) or 'none'})")
        recorded = self.ws.log.append_many(
            [NewEvent("EventRejectionDismissed", {"id": item_id})],
            guard=lambda: item_id in self.ws.workspace_state(copy=False).rejected)
        if not recorded:
            raise Conflict(f"rejected event '{item_id}' was dismissed meanwhile")

    async def approve(self, run_id: str | None = None, gate: str | None = None,
                      comment: str | None = None) -> Run:
        """Approve a gate and continue the run. ``gate`` may be left out when the run has one
        open gate, and ``run_id`` too when only one run waits at a gate."""
        return await self._decide(run_id, gate, "approved", comment)

    async def reject(self, run_id: str | None = None, gate: str | None = None,
                     comment: str | None = None) -> Run:
        """Reject a gate: the run fails and its completed steps are compensated."""
        return await self._decide(run_id, gate, "rejected", comment)

    async def _decide(self, run_id: str | None, gate: str | None, decision: str,
                      comment: str | None) -> Run:
        run_id = run_id or self._only_gated_run()
        state = self._state(run_id)
        open_gates = [g.gate for g in state.gates.values() if g.decision is None]
        names = ", ".join(open_gates) or "none"
        if gate is None:
            if len(open_gates) != 1:
                raise Conflict(f"run {run_id} has {len(open_gates)} open gates ({names}); "
                               "name one")
            gate = open_gates[0]
        chosen = state.gates.get(gate)
        if chosen is None:
            raise NotFound(f"run {run_id} has no open gate '{gate}' (open: {names})")
        if chosen.decision is not None:
            raise Conflict(f"run {run_id} has no open gate '{gate}' (open: {names}; '{gate}' "
                           f"was {chosen.decision} by {chosen.by})")
        chosen_gate = gate

        def still_open() -> bool:
            fresh = self.ws.run_state(run_id).gates.get(chosen_gate)
            return fresh is not None and fresh.decision is None

        recorded = self.ws.log.append_many([NewEvent("GateDecided", self.ws.masker.data({
            "gate": gate, "decision": decision, "comment": comment, "by": "operator"}),
            run=run_id)], guard=still_open)
        if not recorded:
            raise Conflict(f"gate '{gate}' of run {run_id} was decided by another process "
                           "meanwhile")
        return await self._continue(run_id)

    def _only_gated_run(self) -> str:
        gated = [s.id for s in self.ws.workspace_state().runs.values()
                 if s.status == "waiting"
                 and any(g.decision is None for g in self.ws.run_state(s.id).gates.values())]
        if len(gated) != 1:
            raise Conflict(f"{len(gated)} runs wait at a gate ({', '.join(gated) or 'none'}); "
                           "name the RUN")
        return str(gated[0])

    async def resolve(self, run_id: str, step: str, action: str,
                      outputs: Any = None) -> Run:
        """Settle an escalated step: ``retry`` it, ``skip`` it with ``outputs``, or ``abort``
        the run (which compensates), then continue the run."""
        if action not in RESOLVE_ACTIONS:
            raise BadRequest(f"action must be one of {', '.join(RESOLVE_ACTIONS)}, "
                             f"not '{action}'")
        if outputs is not None and action != "skip":
            raise BadRequest("outputs go with the skip action")
        state = self._state(run_id)
        gate = state.gates.get(step)
        if gate is not None and gate.escalated and gate.decision is None:
            return await self._resolve_gate(run_id, gate, action, outputs)
        escalation = state.escalations.get(step)
        if escalation is None or escalation.action is not None:
            pending = [e.path for e in state.escalations.values() if e.action is None] + [
                g.gate for g in state.gates.values() if g.escalated and g.decision is None]
            message = (f"run {run_id} has no open escalation for step '{step}' "
                       f"(open: {', '.join(pending) or 'none'})")
            raise NotFound(message) if escalation is None else Conflict(message)

        def still_open() -> bool:
            fresh = self.ws.run_state(run_id).escalations.get(step)
            return fresh is not None and fresh.action is None

        recorded = self.ws.log.append_many([NewEvent("EscalationResolved", self.ws.masker.data({
            "path": step, "action": action, "outputs": outputs}), run=run_id)],
            guard=still_open)
        if not recorded:
            raise Conflict(f"the escalation of step '{step}' of run {run_id} was settled by "
                           "another process meanwhile")
        return await self._continue(run_id)

    async def _resolve_gate(self, run_id: str, gate: Any, action: str, outputs: Any) -> Run:
        """A gate whose timeout escalated is settled like an escalation."""
        from aiosrun.runtime.coordinator.suspension import gate_resolution

        kind, data = gate_resolution(gate, action, outputs)

        def still_open() -> bool:
            fresh = self.ws.run_state(run_id).gates.get(gate.gate)
            return fresh is not None and fresh.decision is None and fresh.escalated

        recorded = self.ws.log.append_many(
            [NewEvent(kind, self.ws.masker.data(data), run=run_id)], guard=still_open)
        if not recorded:
            raise Conflict(f"the gate '{gate.gate}' of run {run_id} was settled by another "
                           "process meanwhile")
        return await self._continue(run_id)

    async def _continue(self, run_id: str) -> Run:
        from aiosrun.runtime.coordinator.runs import load_run

        playbook, state = load_run(self.ws, run_id)
        return Run.of(await self._execute(playbook, state, busy_ok=True))

    # ---- events ---------------------------------------------------------------------------

    async def emit(self, event: str, data: Any = None, *, id: str | None = None,
                   source: Mapping[str, Any] | None = None, wait: bool = False) -> EmitResult:
        """Record an event (once per ``id``: a second emit with a recorded id does nothing),
        wake the runs waiting for it and start the playbooks it triggers. Those runs execute
        in the Engine's nursery, or here with ``wait`` (then the result lists them). When
        ``aiosrun serve`` runs for this workspace, it dispatches instead."""
        from aiosrun.runtime.coordinator.dispatch import emit_event

        if not EVENT_NAME.fullmatch(event):
            raise BadRequest(f"'{event}' is not an event name: dot-separated words, such as "
                             "customer.signed_up")
        seq, duplicate = emit_event(self.ws, event, data, dict(source or {}), id)
        if duplicate:
            return EmitResult(event, seq, True, (), False)
        if not self.serving and self.ws.store.serve_running():
            return EmitResult(event, seq, False, (), False)
        if not wait:
            self._nursery.start_soon(self._dispatch_pending)
            return EmitResult(event, seq, False, (), True)
        first = len(self.dispatched)
        await self._dispatch_pending()
        touched = {run.id: run for run in self.dispatched[first:]}
        rejected = tuple(r for r in self.ws.workspace_state().rejected.values()
                         if r["event_seq"] == seq)
        return EmitResult(event, seq, False, tuple(touched.values()), True, rejected)

    async def subscribe(self, run_id: str | None = None,
                        after_seq: int = 0) -> AsyncIterator[Record]:
        """The log's records after ``after_seq`` (one run's, or all), then each new one as
        it is appended by any process, for as long as the caller iterates."""
        tail = self.ws.store.tail(after_seq)
        while True:
            records = tail.poll()
            for record in records:
                if run_id is None or record.run == run_id:
                    yield record
            if not records:
                await trio.sleep(SUBSCRIBE_POLL)

    # ---- serving and upkeep ---------------------------------------------------------------

    async def serve(self, say: Callable[[str], None], *, once: bool = False,
                    interval: float = 1.0) -> None:
        """Run schedules, event triggers, due timers and crash recovery until stopped
        (SIGINT/SIGTERM) or, with ``once``, one round of them."""
        from aiosrun.runtime.coordinator.scheduler import Server

        server = Server(self.ws, say, interval)
        server.on_stop = self.request_stop
        registration = self.ws.store.register_serve()
        if registration is None:
            raise Conflict("another `aiosrun serve` is already running for this workspace")
        say(f"serving {self.ws.root}" + (" once" if once else f" every {interval:g}s"))
        self.serving = True
        try:
            await server.run(once)
        finally:
            self.serving = False
            registration.release()

    def request_stop(self) -> None:
        """Stop as ``serve`` does on SIGTERM: runs stop at their next step (resumable) and
        the front ends waiting on :attr:`stop_requested` shut down."""
        self.stopping = True
        self.stop_requested.set()

    async def doctor(self, rebuild: bool = False) -> DoctorReport:
        """Verify the whole log (every checksum); with ``rebuild``, rebuild the run index and
        every snapshot from it."""
        rebuilt = None
        if rebuild:
            self.ws.store.clear_snapshots()
            rebuilt = self.ws.log.rebuild_index()
        count = 0
        states: dict[str, RunState] = {}
        for record in self.ws.log.read():  # every run folded in this one pass
            count += 1
            if record.run is not None:
                apply_run(states.setdefault(record.run, RunState(record.run)), record)
        if not rebuild:  # what is derived too: the run index, an edited snapshot
            self.ws.store.check_index()
            for run_id in self.ws.workspace_state().runs:
                self.ws.store.check_covered(self.ws.store.load_run_snapshot(run_id), run_id)
        if rebuild:
            self.ws.save_workspace_snapshot(every=0)
            for run_id in self.ws.workspace_state().runs:
                self.ws.save_run_snapshot(self.ws.run_state(run_id))
        return DoctorReport(count, self.ws.log.last_seq, self.ws.log.repaired, rebuilt,
                            self.ws.store.url)

    async def migrate(self, url: str) -> MigrateReport:
        """Copy this JSONL workspace's state (log, run index, snapshots, effects ledgers)
        into the empty PostgreSQL database at ``url`` and verify the copy; the password, if
        any, comes from ``PGPASSWORD``. The workspace itself is left as it was."""
        from aiosrun.runtime.log.jsonl import JsonlStore
        from aiosrun.runtime.log.migrate import migrate

        if not isinstance(self.ws.store, JsonlStore):
            raise Conflict(f"this workspace's store is already {self.ws.store.url}")
        if not url.startswith(("postgresql://", "postgres://")):
            raise BadRequest(f"--to expects a postgresql:// URL, not '{url}'")
        self.ws.log.sync()
        done = migrate(self.ws.store, url)  # a one-off command: nothing else waits on it
        return MigrateReport(done.records, done.runs, done.snapshots, done.journal_entries,
                             done.url)

    # ---- execution ------------------------------------------------------------------------

    def _state(self, run_id: str) -> RunState:
        return reading.run_state(self.ws, run_id)

    def _observe(self, record: Record, state: RunState) -> None:
        for observer in self.observers:
            try:
                observer(record)
            except Exception as exc:  # an observer's bug never changes a run
                self.notices.append(self.ws.masker.text(
                    f"an observer failed on seq {record.seq}: {exc}"))

    def _in_background(self, playbook: ir.Playbook, state: RunState,
                       lease: RunLease | None = None) -> None:
        execution = self._running[state.id] = _Execution(trio.Event())

        async def execute() -> None:
            try:
                execution.final = await self._execute(playbook, state, busy_ok=True,
                                                      lease=lease)
            except AiosrunError as exc:  # a refusal (a full disk): the run stays resumable
                self.notices.append(self.ws.masker.text(f"error: run {state.id}: {exc}"))
            except Exception as exc:  # the log keeps the run resumable; the Engine goes on
                self.notices.append(self.ws.masker.text(
                    f"run {state.id}: internal error: {type(exc).__name__}: {exc}"))
            finally:
                del self._running[state.id]
                execution.done.set()

        self._nursery.start_soon(execute)

    async def _execute(self, playbook: ir.Playbook, state: RunState, *,
                       busy_ok: bool = False, lease: RunLease | None = None) -> RunState:
        """Execute a run until it ends or waits, then dispatch what it emitted. Another
        process executing it: ``Conflict``, or (``busy_ok``) the run as it stands."""
        final = await self._try_execute(playbook, state, lease)
        if final is not None:
            return final
        if busy_ok:
            return fold_run(state.id, self.ws.log.read_run(state.id, state.last_seq + 1), state)
        raise Conflict(f"run {state.id} is being executed by another aiosrun process")

    async def _try_execute(self, playbook: ir.Playbook | None, state: RunState,
                           lease: RunLease | None = None) -> RunState | None:
        """Execute a run holding its lease (``lease``: already held); None when another
        process holds it. An exception that escapes the run fails that run (error class
        ``internal``), not the caller."""
        from aiosrun.runtime.coordinator.execution import execute_run

        async with self.run_slots:
            final = await execute_run(self.ws, playbook, state, on_record=self._observe,
                                      should_stop=lambda: self.stopping, lease=lease)
        if final is None:
            return None
        await self._dispatch_pending()
        return final

    async def _dispatch_pending(self) -> None:
        """Dispatch the pending events (those runs emitted too), unless `serve` does it."""
        if not self.serving and self.ws.store.serve_running():
            return
        if self._dispatching:  # the loop running now takes the new events too
            self._dispatch_again = True
            return
        from aiosrun.runtime.coordinator.dispatch import dispatch

        self._dispatching = True
        try:
            while True:
                self._dispatch_again = False
                if self.ws.workspace_state(copy=False).pending_events:
                    for state in await dispatch(self.ws, self._observe,
                                                lambda: self.stopping):
                        self.dispatched.append(Run.of(state))
                if not self._dispatch_again:
                    return
        finally:
            self._dispatching = False


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception a nursery wrapped (a caller's error, say), else the group."""
    while len(group.exceptions) == 1:
        inner = group.exceptions[0]
        if not isinstance(inner, BaseExceptionGroup):
            return inner
        group = inner
    return group


__all__ = ["Engine", "EngineError", "Observer", "Record"]
