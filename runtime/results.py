"""What the Engine returns: frozen records of runs, inbox items, plans and the like.

Each has ``to_json()`` giving exactly the object that ``--format json`` prints (DESIGN
section 7), so a program using the Engine, the CLI and the HTTP API see the same data. The
records are built from projections (:mod:`aiosrun.runtime.log.projections`) and hold plain
JSON values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from aiosrun.runtime.log.projections import RunState, RunSummary


@dataclass(frozen=True)
class StepResult:
    id: str
    path: str
    status: str
    attempts: int
    outputs: Any
    error: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, "path": self.path, "status": self.status,
               "attempts": self.attempts, "outputs": self.outputs}
        if self.error:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class Run:
    """One run as it stands: ``waiting`` says what it waits for (a gate, an escalation, an
    event or a timer), ``error`` why it failed."""

    id: str
    playbook: str
    version: str
    status: str
    steps: tuple[StepResult, ...]
    outputs: Any
    cost_usd: float
    waiting: Mapping[str, Any] | None
    error: Mapping[str, Any] | None
    parent: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    digest: str = ""
    last_seq: int = 0
    cancel_requested: bool = False
    compensations: Mapping[str, str] = field(default_factory=dict)
    pending: tuple[Mapping[str, Any], ...] = ()

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "compensated", "cancelled",
                               "needs_attention")

    @classmethod
    def of(cls, state: RunState) -> Self:
        steps = tuple(StepResult(s.id, s.path, s.status, s.attempts, s.outputs, s.error)
                      for s in (state.steps[p] for p in state.order))
        return cls(id=state.id, playbook=state.playbook, version=state.digest[:12],
                   status=state.status, steps=steps, outputs=state.outputs,
                   cost_usd=state.cost_usd, waiting=state.waiting_for(), error=state.error,
                   parent=state.parent, started_at=state.started_at,
                   finished_at=state.finished_at, digest=state.digest,
                   last_seq=state.last_seq, cancel_requested=state.cancel_requested,
                   compensations=dict(state.compensations), pending=tuple(state.pending()))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "playbook": self.playbook,
            "version": self.version,
            "status": self.status,
            "steps": [s.to_json() for s in self.steps],
            "outputs": self.outputs,
            "error": self.error,
            "cost_usd": self.cost_usd,
            "waiting": self.waiting,
            "parent": self.parent,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True)
class RunAt(Run):
    """A run as ``replay`` rebuilds it, at the seq it stands at."""

    def to_json(self) -> dict[str, Any]:
        return super().to_json() | {"seq": self.last_seq}


@dataclass(frozen=True)
class RunListing:
    """A run in ``runs``: enough to find it."""

    id: str
    playbook: str
    status: str
    started_at: str
    parent: str | None = None

    @classmethod
    def of(cls, summary: RunSummary) -> RunListing:
        return cls(summary.id, summary.playbook, summary.status, summary.started_at,
                   summary.parent)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "playbook": self.playbook, "status": self.status,
                "started_at": self.started_at}


def settle_hint(run_id: str, waiting: Mapping[str, Any]) -> list[str]:
    """The commands that settle what a run waits for."""
    if waiting["via"] == "approve":
        gate = waiting["id"]
        hints = [f"aiosrun approve {run_id} {gate} [--comment TEXT]",
                 f"aiosrun reject {run_id} {gate} [--comment TEXT]"]
        if waiting["kind"] == "escalation":  # its timeout passed: ask again, or settle it
            hints.append(f"aiosrun resolve {run_id} {gate} --retry|--skip|--abort")
        return hints
    if waiting["via"] == "dismiss":
        return [f"aiosrun inbox --dismiss {waiting['id']}"]
    step = waiting["step"]
    return [f"aiosrun resolve {run_id} {step} --retry",
            f"aiosrun resolve {run_id} {step} --skip [--outputs JSON]",
            f"aiosrun resolve {run_id} {step} --abort"]


@dataclass(frozen=True)
class InboxItem:
    """Something that waits for the operator: a gate, an escalation, or a wait of a run."""

    run: str | None
    playbook: str
    item: Mapping[str, Any]

    @classmethod
    def rejection(cls, rejected: Mapping[str, Any]) -> InboxItem:
        """A triggered playbook that refused an event's payload (nothing was started)."""
        return cls(None, str(rejected["playbook"]), {
            "kind": "rejected_event", "via": "dismiss", "id": rejected["id"], "step": None,
            "message": f"event {rejected['event']} (seq {rejected['event_seq']}) was "
                       f"rejected by {rejected['playbook']}: {rejected['error']}",
            "event": rejected["event"], "event_seq": rejected["event_seq"],
            "error": rejected["error"], "since": rejected["ts"], "seq": rejected["seq"]})

    @property
    def kind(self) -> str:
        return str(self.item["kind"])

    @property
    def commands(self) -> list[str]:
        return settle_hint(self.run or "", self.item)

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run, "playbook": self.playbook, **self.item,
                "commands": self.commands}


@dataclass(frozen=True)
class Change:
    """One line of ``apply``'s plan: ``+`` new, ``~`` changed, ``=`` unchanged, ``-`` removed."""

    sign: str
    name: str
    digest: str | None
    previous: str | None

    def line(self) -> str:
        if self.sign == "=":
            return f"  = {self.name} (unchanged, {(self.digest or '')[:12]})"
        if self.sign == "-":
            return f"  - {self.name} (removed: no file defines it)"
        what = "new" if self.previous is None else f"{self.previous[:12]} ->"
        return f"  {self.sign} {self.name} ({what} {(self.digest or '')[:12]})"

    def to_json(self) -> dict[str, Any]:
        return {"change": self.sign, "name": self.name, "digest": self.digest,
                "previous": self.previous}


@dataclass(frozen=True)
class ApplyResult:
    changes: tuple[Change, ...]
    dry_run: bool

    def count(self, sign: str) -> int:
        return sum(c.sign == sign for c in self.changes)

    @property
    def summary(self) -> str:
        return (f"{self.count('+') + self.count('~')} to apply, {self.count('-')} to remove, "
                f"{self.count('=')} unchanged")

    def to_json(self) -> dict[str, Any]:
        return {"changes": [c.to_json() for c in self.changes], "dry_run": self.dry_run}


@dataclass(frozen=True)
class EmitResult:
    """An event recorded (or found already recorded under its id) and the runs it touched."""

    event: str
    seq: int
    duplicate: bool
    runs: tuple[Run, ...]
    dispatched: bool
    rejected: tuple[Mapping[str, Any], ...] = ()  # playbooks that refused the payload

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "runs": [r.to_json() for r in self.runs]}
        if self.duplicate:
            out["duplicate"] = True
        if self.rejected:
            out["rejected"] = [{"playbook": r["playbook"], "error": r["error"]}
                               for r in self.rejected]
        return out


@dataclass(frozen=True)
class JsonResult:
    """A result that is a JSON document already (a timeline tree, a plan)."""

    data: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)


@dataclass(frozen=True)
class DoctorReport:
    records: int
    last_seq: int
    repaired: str | None
    rebuilt_runs: int | None
    store: str = "jsonl"

    def to_json(self) -> dict[str, Any]:
        return {"records": self.records, "last_seq": self.last_seq, "repaired": self.repaired,
                "rebuilt_runs": self.rebuilt_runs, "store": self.store}


@dataclass(frozen=True)
class MigrateReport:
    """What ``aiosrun migrate`` copied (and verified) into PostgreSQL."""

    records: int
    runs: int
    snapshots: int
    journal_entries: int
    url: str

    def to_json(self) -> dict[str, Any]:
        return {"records": self.records, "runs": self.runs, "snapshots": self.snapshots,
                "journal_entries": self.journal_entries, "url": self.url}
