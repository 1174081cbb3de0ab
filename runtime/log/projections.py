"""Projections: the state of runs and of the workspace, folded from the event log.

:func:`apply_run` and :func:`apply_workspace` are the only code that turns events into state;
resume, ``status``, ``replay --at SEQ`` and the snapshots all go through them, so they cannot
disagree. The fold updates state objects in place for speed; the objects belong to the fold
(callers get them from :func:`fold_run` / :func:`fold_workspace` or a snapshot), which keeps
the functions pure as seen from outside.

Event types (past tense; ``run`` is set on run events):

    PlaybookApplied      name, digest, source, commit, ir       a new current version
    PlaybookVersionRecorded  same, for a version run from a file without apply
    PlaybookRemoved      name
    RunStarted           playbook, digest, inputs, parent, parent_step, trigger,
                         idempotency_key (when the starter gave one), forked_from
                         ({run, step, seq}: a fork of that run)
    StepStarted          path, id, attempt, key (a resumed attempt repeats its number)
    StepAttemptFailed    path, attempt, error_class, message, retry_in
    StepSucceeded        path, outputs, attempts, reused_from (a fork's step taken from
                         that run without executing it)
    StepFailed           path, error_class, message, attempts, continued
    StepSkipped          path
    StepCancelled        path
    RunCompensating      reason
    CompensationStarted / CompensationSucceeded / CompensationFailed   path, ...
    RunSucceeded         outputs
    RunFailed            error, step
    RunCompensated, RunNeedsAttention (reason), RunCancelRequested, RunCancelled
    GateOpened           gate, path, message, show, timeout_at, on_timeout
    GateDecided          gate, decision (approved | rejected), comment, by
    GateEscalated        gate (its timeout passed with on_timeout: escalate)
    EscalationOpened     path, error_class, message, attempts, args
    EscalationResolved   path, action (retry | skip | abort), outputs
    WaitOpened           path, event, due_at, timeout_at
    WaitSatisfied        path, by (event | timer), event, data, seq
    EventEmitted         event, data, key, id, source   (workspace level: no run; ``id`` is
                         the caller's event id, recorded once)
    EventDispatched      seq, started, woke
    EventRejected        seq, event, playbook, error   (a triggered run's inputs did not fit;
                         listed in the inbox until dismissed)
    EventRejectionDismissed  id   (``SEQ-PLAYBOOK`` of a rejection the operator has seen)
    ModelCalled          path, attempt, tier, alias, provider, model, input_tokens,
                         output_tokens, cost_usd, latency_ms, cached, accepted, key, output,
                         error (one call of an ``llm:`` step; the run's cost sums them)
"""

from __future__ import annotations

import contextlib
import gc
import json
import operator
import os
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from aiosrun.runtime.log.eventlog import LogCorrupted, LogError, Record

TERMINAL = frozenset({"succeeded", "failed", "compensated", "cancelled", "needs_attention"})


@dataclass
class StepState:
    path: str
    id: str
    status: str = "running"  # running, succeeded, failed, skipped, cancelled
    attempts: int = 0
    outputs: Any = None
    error: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    continued: bool = False
    reused_from: str | None = None  # a fork took it, outputs and all, from this run
    open_attempt: bool = False  # an attempt started and not yet ended: a crash interrupted it
    history: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)  # ModelCalled of llm steps

    @property
    def outcome(self) -> str:
        return {"succeeded": "success", "skipped": "skipped", "running": "running"}.get(
            self.status, "failure" if self.status != "cancelled" else "cancelled")

    @property
    def conclusion(self) -> str:
        return "success" if self.continued else self.outcome


@dataclass
class GateState:
    gate: str
    path: str
    message: str = ""
    show: Any = None
    timeout_at: str | None = None
    on_timeout: str = "reject"
    opened_at: str = ""
    opened_seq: int = 0
    decision: str | None = None
    comment: str | None = None
    decided_at: str | None = None
    by: str | None = None
    escalated: bool = False
    outputs: Any = None  # the operator's outputs when an escalated gate was skipped


@dataclass
class EscalationState:
    path: str
    error_class: str = ""
    message: str = ""
    attempts: int = 0
    args: Any = None
    opened_at: str = ""
    opened_seq: int = 0
    action: str | None = None  # retry, skip, abort once the operator settled it
    outputs: Any = None


@dataclass
class WaitState:
    path: str
    event: str | None = None
    due_at: str | None = None
    timeout_at: str | None = None
    opened_seq: int = 0
    satisfied: dict[str, Any] | None = None


@dataclass
class RunState:
    id: str
    playbook: str = ""
    digest: str = ""
    status: str = "running"
    inputs: Any = None
    parent: str | None = None
    parent_step: str | None = None
    trigger: Any = None
    started_at: str | None = None
    finished_at: str | None = None
    steps: dict[str, StepState] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # first start of each step
    completed: list[str] = field(default_factory=list)  # success order, for compensation
    compensations: dict[str, str] = field(default_factory=dict)  # path -> status
    compensating: bool = False
    cancel_requested: bool = False
    outputs: Any = None
    error: dict[str, Any] | None = None
    cost_usd: float = 0.0
    last_seq: int = 0
    gates: dict[str, GateState] = field(default_factory=dict)
    escalations: dict[str, EscalationState] = field(default_factory=dict)
    waits: dict[str, WaitState] = field(default_factory=dict)

    def pending(self) -> list[dict[str, Any]]:
        """Every open gate and escalation, oldest first (what ``aiosrun inbox`` lists)."""
        items: list[dict[str, Any]] = []
        for gate in self.gates.values():
            if gate.decision is None:
                items.append({"kind": "escalation" if gate.escalated else "gate",
                              "via": "approve", "id": gate.gate, "step": gate.path,
                              "message": gate.message, "show": gate.show,
                              "timeout_at": gate.timeout_at, "since": gate.opened_at,
                              "seq": gate.opened_seq})
        for escalation in self.escalations.values():
            if escalation.action is None:
                items.append({"kind": "escalation", "via": "resolve", "id": escalation.path,
                              "step": escalation.path, "message": escalation.message,
                              "error_class": escalation.error_class,
                              "attempts": escalation.attempts, "args": escalation.args,
                              "inputs": self.inputs, "since": escalation.opened_at,
                              "seq": escalation.opened_seq})
        for wait in self.waits.values():
            if wait.satisfied is None:
                what = f"event '{wait.event}'" if wait.event else f"until {wait.due_at}"
                items.append({"kind": "wait", "via": "event" if wait.event else "timer",
                              "id": wait.path, "step": wait.path, "message": f"waiting for {what}",
                              "event": wait.event, "due_at": wait.due_at,
                              "timeout_at": wait.timeout_at, "since": "",
                              "seq": wait.opened_seq})
        return sorted(items, key=lambda item: item["seq"])

    def pending_count(self) -> int:
        """Open gates, escalations and waits: while any is open, the run is ``waiting``."""
        return (sum(g.decision is None for g in self.gates.values())
                + sum(e.action is None for e in self.escalations.values())
                + sum(w.satisfied is None for w in self.waits.values()))

    def waiting_for(self) -> dict[str, Any] | None:
        """What the run waits for (DESIGN §7 ``waiting``), or None."""
        pending = self.pending()
        return pending[0] if pending else None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL and not (self.compensating and
                                                self.status == "failed")


def apply_run(state: RunState, record: Record) -> RunState:
    data = record.data
    kind = record.type
    state.last_seq = record.seq
    if kind == "RunStarted":
        state.playbook = data["playbook"]
        state.digest = data["digest"]
        state.inputs = data.get("inputs")
        state.parent = data.get("parent")
        state.parent_step = data.get("parent_step")
        state.trigger = data.get("trigger")
        state.started_at = record.ts
        state.status = "running"
    elif kind.startswith("Step"):
        path = data["path"]
        step = state.steps.get(path)
        if step is None:
            step = state.steps[path] = StepState(path, data.get("id", path.rsplit("/", 1)[-1]))
            state.order.append(path)
        _apply_step(state, step, kind, data, record.ts)
    elif kind == "ModelCalled":
        state.cost_usd = round(state.cost_usd + float(data.get("cost_usd", 0)), 12)
        step = state.steps.get(data["path"])
        if step is not None:
            step.calls.append({k: data.get(k) for k in ("attempt", "tier", "alias", "output",
                                                        "accepted", "error", "cost_usd",
                                                        "turn")})
    elif kind == "RunCompensating":
        state.compensating = True
        state.status = "failed"
        state.error = state.error or data.get("error")
    elif kind.startswith("Compensation"):
        state.compensations[data["path"]] = kind.removeprefix("Compensation").lower()
    elif kind == "RunSucceeded":
        state.status, state.outputs, state.finished_at = "succeeded", data.get("outputs"), \
            record.ts
    elif kind == "RunFailed":
        state.status, state.error, state.finished_at = "failed", data.get("error"), record.ts
    elif kind == "RunCompensated":
        state.status, state.compensating, state.finished_at = "compensated", False, record.ts
    elif kind == "RunNeedsAttention":
        state.status, state.compensating = "needs_attention", False
        state.error = {**(state.error or {}), "attention": data.get("reason")}
        state.finished_at = record.ts
    elif kind == "RunCancelRequested":
        state.cancel_requested = True
    elif kind == "GateOpened":
        state.gates[data["gate"]] = GateState(
            data["gate"], data["path"], data.get("message", ""), data.get("show"),
            data.get("timeout_at"), data.get("on_timeout", "reject"), record.ts, record.seq)
        state.status = "waiting"
    elif kind == "GateDecided":
        gate = state.gates.get(data["gate"])
        if gate is not None:
            gate.decision, gate.comment = data["decision"], data.get("comment")
            gate.outputs = data.get("outputs")
            gate.decided_at, gate.by = record.ts, data.get("by")
        state.status = "waiting" if state.pending_count() else "running"
    elif kind == "GateEscalated":
        if data["gate"] in state.gates:
            state.gates[data["gate"]].escalated = True
    elif kind == "WaitOpened":
        state.waits[data["path"]] = WaitState(data["path"], data.get("event"),
                                              data.get("due_at"), data.get("timeout_at"),
                                              record.seq)
        state.status = "waiting"
    elif kind == "WaitSatisfied":
        wait = state.waits.get(data["path"])
        if wait is not None:
            wait.satisfied = {"event": data.get("event"), "data": data.get("data"),
                              "seq": data.get("seq"), "by": data.get("by")}
        state.status = "waiting" if state.pending_count() else "running"
    elif kind == "EscalationOpened":
        state.escalations[data["path"]] = EscalationState(
            data["path"], data.get("error_class", ""), data.get("message", ""),
            int(data.get("attempts", 0)), data.get("args"), record.ts, record.seq)
        state.status = "waiting"
    elif kind == "EscalationResolved":
        escalation = state.escalations.get(data["path"])
        if escalation is not None:
            escalation.action, escalation.outputs = data["action"], data.get("outputs")
        state.status = "waiting" if state.pending_count() else "running"
    elif kind == "RunCancelled":
        state.status, state.compensating, state.finished_at = "cancelled", False, record.ts
    return state


def _apply_step(state: RunState, step: StepState, kind: str, data: Any, ts: str) -> None:
    if kind == "StepStarted":
        step.status = "running"
        step.attempts = max(step.attempts, int(data.get("attempt", 1)))
        step.open_attempt = True
        step.started_at = step.started_at or ts
    elif kind == "StepAttemptFailed":
        step.open_attempt = False
        step.history.append({k: data.get(k) for k in ("attempt", "error_class", "message",
                                                      "retry_in")} | {"at": ts})
    elif kind == "StepSucceeded":
        step.reused_from = data.get("reused_from")
        if step.status != "succeeded":  # (a list scan here made replay quadratic)
            state.completed.append(step.path)
        step.status, step.outputs, step.open_attempt = "succeeded", data.get("outputs"), False
        step.attempts = max(step.attempts, int(data.get("attempts", step.attempts)))
        step.finished_at = ts
    elif kind == "StepFailed":
        step.status, step.open_attempt = "failed", False
        step.error = {"class": data.get("error_class"), "message": data.get("message")}
        step.continued = bool(data.get("continued"))
        step.finished_at = ts
    elif kind == "StepSkipped":
        step.status, step.finished_at = "skipped", ts
    elif kind == "StepCancelled":
        step.status, step.open_attempt, step.finished_at = "cancelled", False, ts


def fold_run(run_id: str, records: Iterable[Record], state: RunState | None = None,
             until_seq: int | None = None) -> RunState:
    state = state or RunState(run_id)
    for record in records:
        if until_seq is not None and record.seq > until_seq:
            break
        if record.run == run_id:
            apply_run(state, record)
    return state


# ---- the workspace ----------------------------------------------------------------------------

@dataclass
class Version:
    name: str
    digest: str
    source: str
    commit: str | None
    seq: int  # of its PlaybookApplied / PlaybookVersionRecorded record, which holds the IR
    ir: Any = None  # encoded IR (aiosrun.dsl.ir_codec); None when read from a snapshot


@dataclass
class RunSummary:
    id: str
    playbook: str
    status: str
    started_at: str
    parent: str | None = None
    open: list[str] = field(default_factory=list)  # its open gates, escalations and waits
    last_seq: int = 0  # its latest record (0: not known, a snapshot of the first layout)
    first_seq: int = 0  # its RunStarted record (0: not known, a snapshot saved before)


@dataclass
class WorkspaceState:
    current: dict[str, str] = field(default_factory=dict)  # playbook name -> digest
    versions: dict[str, Version] = field(default_factory=dict)  # digest -> version
    runs: dict[str, RunSummary] = field(default_factory=dict)
    last_seq: int = 0
    pending_events: dict[int, dict[str, Any]] = field(default_factory=dict)  # seq -> event
    event_keys: dict[str, int] = field(default_factory=dict)  # emit key -> seq
    event_ids: dict[str, int] = field(default_factory=dict)  # caller's event id -> seq
    idempotency_keys: dict[str, str] = field(default_factory=dict)  # start key -> run id
    rejected: dict[str, dict[str, Any]] = field(default_factory=dict)  # SEQ-PLAYBOOK -> why
    spend: dict[str, float] = field(default_factory=dict)  # UTC day -> model spend in USD


_RUN_END = {"RunSucceeded": "succeeded", "RunFailed": "failed", "RunCompensated": "compensated",
            "RunNeedsAttention": "needs_attention", "RunCancelled": "cancelled",
            "RunCompensating": "failed", "GateOpened": "waiting", "EscalationOpened": "waiting",
            "GateDecided": "running", "EscalationResolved": "running",
            "WaitOpened": "waiting", "WaitSatisfied": "running"}


_OPENS = {"GateOpened": "gate", "EscalationOpened": "path", "WaitOpened": "path"}
_CLOSES = {"GateDecided": "gate", "EscalationResolved": "path", "WaitSatisfied": "path"}


def apply_workspace(state: WorkspaceState, record: Record) -> WorkspaceState:
    data = record.data
    state.last_seq = record.seq
    if record.run is not None and record.run in state.runs:
        state.runs[record.run].last_seq = record.seq
    if record.type in ("PlaybookApplied", "PlaybookVersionRecorded"):
        version = Version(data["name"], data["digest"], data.get("source", ""),
                          data.get("commit"), record.seq, data["ir"])
        state.versions.setdefault(version.digest, version)
        if record.type == "PlaybookApplied":
            state.current[version.name] = version.digest
    elif record.type == "PlaybookRemoved":
        state.current.pop(data["name"], None)
    elif record.type == "RunStarted" and record.run is not None:
        state.runs[record.run] = RunSummary(record.run, data["playbook"], "running", record.ts,
                                            data.get("parent"), last_seq=record.seq,
                                            first_seq=record.seq)
        if data.get("idempotency_key"):
            state.idempotency_keys.setdefault(data["idempotency_key"], record.run)
    elif record.type == "EventEmitted":
        state.pending_events[record.seq] = {"event": data["event"], "data": data.get("data"),
                                            "seq": record.seq, "ts": record.ts}
        if data.get("key"):
            state.event_keys[data["key"]] = record.seq
        if data.get("id"):
            state.event_ids.setdefault(str(data["id"]), record.seq)
    elif record.type == "ModelCalled":
        day = record.ts[:10]
        state.spend[day] = round(state.spend.get(day, 0.0) + float(data.get("cost_usd", 0)), 12)
    elif record.type == "EventRejected":
        key = f"{data['seq']}-{data['playbook']}"
        state.rejected[key] = {"id": key, "seq": record.seq, "event_seq": data["seq"],
                               "event": data.get("event"), "playbook": data["playbook"],
                               "error": data.get("error", ""), "ts": record.ts}
    elif record.type == "EventRejectionDismissed":
        state.rejected.pop(str(data["id"]), None)
    elif record.type == "EventDispatched":
        state.pending_events.pop(int(data["seq"]), None)
    elif record.type in _RUN_END and record.run in state.runs:
        summary = state.runs[record.run]
        summary.status = _RUN_END[record.type]
        item = _OPENS.get(record.type) or _CLOSES.get(record.type)
        if item is not None:
            key = f"{item}:{data.get(item)}"
            if record.type in _OPENS and key not in summary.open:
                summary.open.append(key)
            elif record.type in _CLOSES and key in summary.open:
                summary.open.remove(key)
            if summary.status in ("running", "waiting"):  # one decided, others still open
                summary.status = "waiting" if summary.open else "running"
        elif summary.status not in ("running", "waiting"):
            summary.open.clear()
    return state


def fold_workspace(records: Iterable[Record],
                   state: WorkspaceState | None = None) -> WorkspaceState:
    state = state or WorkspaceState()
    for record in records:
        apply_workspace(state, record)
    return state


# ---- snapshots ----------------------------------------------------------------------------------

class SnapshotCorrupted(LogError):
    """A snapshot that does not match its checksum: edited or damaged."""


_SNAPSHOT_HEADER = "aiosrun-snapshot crc32="


def save_snapshot(path: Path, state: RunState | WorkspaceState) -> None:
    """Write atomically, with a checksum: a crash leaves the old snapshot or the new one, and
    an edit is noticed. A snapshot only saves replay time, so one that cannot be written (a
    full disk) is left out rather than failing what was recorded."""
    text = snapshot_text(state)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, "utf-8")
        temporary.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()


def snapshot_text(state: RunState | WorkspaceState) -> str:
    """A snapshot as stored (a file, a row): a checksum line, then the state as JSON (a run's
    steps on lines of their own after it, see :func:`_run_body`)."""
    body: str | None
    if isinstance(state, WorkspaceState):
        body = json.dumps(_workspace_body(state), ensure_ascii=False, separators=(",", ":"))
    else:
        body = _run_body(state)
    if body is None:
        body = json.dumps(state, ensure_ascii=False, default=vars)  # not asdict(): a copy
    return f"{_SNAPSHOT_HEADER}{zlib.crc32(body.encode('utf-8')):08x}\n{body}"


_STEP_FIELDS = tuple(f.name for f in fields(StepState))
_STEP_FIELD_SET = frozenset(_STEP_FIELDS)


def _run_body(state: RunState) -> str | None:
    """The run without its steps as one JSON line (``"steps"`` holds their count), then one
    line per step: the list of its fields, in the order of ``state.order`` (the order the
    fold created them in). Loading reads the first line only and decodes a step when it is
    used; a step still undecoded is written back as the line it was read from. None: the
    steps are not in ``order``'s order (not a state the fold made), so plain JSON is used."""
    steps = state.steps
    if len(steps) != len(state.order) or list(steps) != state.order:
        for step in steps.values():
            if isinstance(step, _StoredStep):
                step._decode()  # vars() would see its line, not its fields
        return None
    head = {k: value for k, value in vars(state).items() if k != "steps"}
    head["steps"] = len(steps)
    lines = [json.dumps(head, ensure_ascii=False, default=vars)]
    encode, fields_of, stored = _encode_row, _STEP_VALUES, _StoredStep
    enabled = gc.isenabled()
    gc.disable()  # the lines are many small objects, the run's state many more to walk
    try:
        for step in steps.values():
            row = step.__dict__.get("_row") if type(step) is stored else None
            lines.append(row if row is not None else encode(fields_of(step)))
        return "\n".join(lines)
    finally:
        if enabled:
            gc.enable()


def _row_encoder() -> Callable[[Any], str]:
    """One step's fields as compact JSON. ``json.dumps`` (and ``JSONEncoder.encode``) build
    the C encoder anew on every call, which was half the cost of a 50,000-step snapshot;
    this one is built once (the standard library's own fast path, checked once here)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    plain = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    slow: Callable[[Any], str] = plain.encode
    if make is None:
        return slow
    fast = make(None, plain.default, json.encoder.encode_basestring, None, ":", ",", False,
                False, True)
    sample: tuple[Any, ...] = ("a", "é\n", 1, 2.5, None, True, {"k": [1, {"v": "x"}]}, [])

    def encode(row: Any) -> str:
        return "".join(fast(row, 0))

    return encode if encode(sample) == slow(sample) else slow


_encode_row = _row_encoder()
_STEP_VALUES = operator.attrgetter(*_STEP_FIELDS)


class _StoredStep(StepState):
    """A step read from a run snapshot, its fields decoded from its line when first used: the
    state of a run of 50,000 steps is read without building 50,000 steps (most commands and
    a resume look at a few)."""

    def __init__(self, row: str) -> None:  # not the dataclass's: the fields come later
        self.__dict__["_row"] = row

    def _decode(self) -> None:
        row = self.__dict__.pop("_row", None)
        if row is not None:
            for name, value in zip(_STEP_FIELDS, json.loads(row), strict=True):
                self.__dict__.setdefault(name, value)
            # decoded, it is a plain step: its fields are read (and saved) at full speed
            object.__setattr__(self, "__class__", StepState)

    def __getattribute__(self, name: str) -> Any:
        # every field has a class-level default, so __getattr__ would never be asked for one
        # and an undecoded step would read as a step not yet run
        if name in _STEP_FIELD_SET and "_row" in object.__getattribute__(self, "__dict__"):
            object.__getattribute__(self, "_decode")()
        return object.__getattribute__(self, name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StepState):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _STEP_FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, like StepState

    def __setattr__(self, name: str, value: Any) -> None:
        self._decode()  # a changed step is written back from its fields, not its old line
        object.__setattr__(self, name, value)  # a StepState now (super() would refuse it)


def _stored_steps(rows: list[str]) -> list[_StoredStep]:
    """``map(_StoredStep, rows)`` at half the cost: no Python ``__init__`` per step, and
    the row put in place without passing through ``__getattribute__``."""
    new, put, cls = object.__new__, object.__setattr__, _StoredStep
    steps = []
    for row in rows:
        step = new(cls)
        put(step, "_row", row)
        steps.append(step)
    return steps


def _snapshot_body(path: Path) -> Any:
    """The parsed snapshot, None when there is none; raises :class:`SnapshotCorrupted`."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SnapshotCorrupted(f"{path}: unreadable snapshot ({exc})") from None
    return parse_snapshot(text, path)


def parse_snapshot(text: str, where: object) -> Any:
    """The state a :func:`snapshot_text` holds; raises :class:`SnapshotCorrupted`."""
    header, _, body = text.partition("\n")
    crc = header.removeprefix(_SNAPSHOT_HEADER)
    try:
        valid = header.startswith(_SNAPSHOT_HEADER) and \
            int(crc, 16) == zlib.crc32(body.encode("utf-8"))
        if valid:
            head, rows, steps = body.partition("\n")
            if not rows:
                return json.loads(body)
            raw = json.loads(head)
            raw["steps"] = steps.split("\n")  # a run's steps, one line each (_run_body)
            return raw
    except ValueError:
        pass
    raise SnapshotCorrupted(f"{where}: the snapshot does not match its checksum (edited or "
                            "damaged); snapshots are derived from the log: `aiosrun doctor "
                            "--rebuild` rebuilds them")


def load_run_snapshot(path: Path) -> RunState | None:
    """Read with the cyclic collector paused: the snapshot of a long run is a few hundred
    thousand small acyclic objects, and the collections their allocation set off (each one
    walking everything the process holds) cost more than the reading itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return run_snapshot(_snapshot_body(path))
    finally:
        if enabled:
            gc.enable()


def run_snapshot(raw: Any) -> RunState | None:
    """A run's state from a parsed snapshot (None: none, or an older layout)."""
    if raw is None:
        return None
    try:
        stored = raw.pop("steps")
        if isinstance(stored, dict):  # the layout before steps had lines of their own
            steps = {p: StepState(**s) for p, s in stored.items()}
        else:
            rows = stored if isinstance(stored, list) else []
            if len(rows) != len(raw["order"]) or (isinstance(stored, int) and stored):
                return None
            steps = dict(zip(raw["order"], _stored_steps(rows), strict=True))
        gates = {g: GateState(**s) for g, s in raw.pop("gates", {}).items()}
        escalations = {e: EscalationState(**s) for e, s in raw.pop("escalations", {}).items()}
        waits = {w: WaitState(**s) for w, s in raw.pop("waits", {}).items()}
        return RunState(**raw, steps=steps, gates=gates, escalations=escalations, waits=waits)
    except (AttributeError, ValueError, TypeError, KeyError):
        return None  # an older layout: it only costs a longer replay


def load_workspace_snapshot(path: Path) -> WorkspaceState | None:
    return workspace_snapshot(_snapshot_body(path))


_WORKSPACE_LAYOUT = 2
_VERSION_FIELDS = ("name", "digest", "source", "commit", "seq")


def _workspace_body(state: WorkspaceState) -> dict[str, Any]:
    """The workspace snapshot's compact form: versions without their IR (each names the seq
    of the record that holds it, read when a run needs it), runs as rows of fields. The IR
    made most of the snapshot, and nothing that reads the snapshot back needs it."""
    return {"layout": _WORKSPACE_LAYOUT, "current": state.current,
            "versions": [[getattr(v, f) for f in _VERSION_FIELDS]
                         for v in state.versions.values()],
            "runs": [[s.id, s.playbook, s.status, s.started_at, s.parent, s.open, s.last_seq,
                      s.first_seq] for s in state.runs.values()],
            "last_seq": state.last_seq, "pending_events": state.pending_events,
            "event_keys": state.event_keys, "event_ids": state.event_ids,
            "idempotency_keys": state.idempotency_keys, "rejected": state.rejected,
            "spend": state.spend}


def workspace_snapshot(raw: Any) -> WorkspaceState | None:
    """The workspace's state from a parsed snapshot (None: none, or an older layout)."""
    if raw is None:
        return None
    try:
        if raw.get("layout") == _WORKSPACE_LAYOUT:
            versions = {row[1]: Version(*row) for row in raw["versions"]}
            runs = {row[0]: RunSummary(*row) for row in raw["runs"]}
        else:  # the first layout: dicts of fields, each version with its IR
            versions = {d: Version(**v) for d, v in raw["versions"].items()}
            runs = {r: RunSummary(**s) for r, s in raw["runs"].items()}
        return WorkspaceState(
            current=raw["current"],
            versions=versions,
            runs=runs,
            last_seq=raw["last_seq"],
            pending_events={int(k): v for k, v in raw.get("pending_events", {}).items()},
            event_keys=raw.get("event_keys", {}),
            event_ids=raw.get("event_ids", {}),
            idempotency_keys=raw.get("idempotency_keys", {}),
            rejected=raw.get("rejected", {}),
            spend=raw.get("spend", {}),
        )
    except (AttributeError, ValueError, KeyError, TypeError):
        return None


def check_covered(path: Path, snapshot: RunState | WorkspaceState | None, last_seq: int) -> None:
    """Raise when ``snapshot`` covers seqs the log no longer has (it was truncated)."""
    if snapshot is not None and snapshot.last_seq > last_seq:
        raise LogCorrupted(path, 1, f"this snapshot covers the log up to seq "
                           f"{snapshot.last_seq}, but the log ends at seq {last_seq}: records "
                           "were cut off the log; restore it from a backup")
