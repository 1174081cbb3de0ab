"""What to tell the operator about a log record, as plain data (no I/O).

A notification's ``key`` names the item it is about (``gate:SEQ`` for the record that opened
the gate), so each item is told once per channel however often the log is read again. The
texts are built from what the log holds, which is already masked; the sender masks again
before anything leaves, so no secret value reaches a message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

# A run that fails because the operator said so (a rejected gate, a cancel) is not news.
QUIET_FAILURES = frozenset({"rejected", "gate_rejected", "cancelled", "parent_failed"})
MAX_TEXT = 1500
TOLD = frozenset({"GateOpened", "GateEscalated", "EscalationOpened", "RunFailed",
                  "RunCompensating", "RunNeedsAttention", "EventRejected"})


@dataclass(frozen=True)
class Notification:
    key: str
    trigger: str
    title: str  # one line
    text: str
    link: str | None
    run: str | None = None
    playbook: str | None = None
    item: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "trigger": self.trigger, "title": self.title,
                "text": self.text, "url": self.link, "run": self.run,
                "playbook": self.playbook, "item": self.item}


def link_to(base: str | None, path: str) -> str | None:
    return None if base is None else base.rstrip("/") + path


def one_line(text: str, limit: int = 120) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def notification_for(record_type: str, seq: int, run: str | None, data: Mapping[str, Any],
                     playbook_of: Callable[[str], str | None],
                     base: str | None) -> Notification | None:
    """The notification a record calls for, or None; ``playbook_of`` names a run's
    playbook."""
    if record_type not in TOLD:
        return None
    playbook = playbook_of(run) if run is not None else None
    page = link_to(base, f"/ui/runs/{quote(run or '', safe='')}")
    if record_type == "GateOpened" and run is not None:
        gate = str(data.get("gate"))
        message = str(data.get("message") or "")
        inbox = link_to(base, f"/ui/inbox#{quote(f'{run}-{gate}', safe='')}")
        text = (f"{message}\n\nRun {run} of {playbook} waits for your approval at gate "
                f"'{gate}'." + (f" It times out at {data['timeout_at']} "
                                f"({data.get('on_timeout', 'reject')})."
                                if data.get("timeout_at") else ""))
        return Notification(f"gate:{seq}", "gate",
                            f"Approval needed: {playbook} / {gate}", _cut(text), inbox,
                            run, playbook, gate)
    if record_type == "GateEscalated" and run is not None:
        gate = str(data.get("gate"))
        return Notification(f"escalation:{seq}", "escalation",
                            f"Gate timed out: {playbook} / {gate}",
                            f"No decision came in time at gate '{gate}' of run {run}; it now "
                            "waits for you to retry, skip or abort.",
                            link_to(base, f"/ui/inbox#{quote(f'{run}-{gate}', safe='')}"),
                            run, playbook, gate)
    if record_type == "EscalationOpened" and run is not None:
        step = str(data.get("path"))
        text = (f"Step '{step}' of run {run} ({playbook}) failed "
                f"{data.get('attempts', '?')} time(s) ({data.get('error_class', 'error')}): "
                f"{data.get('message', '')}\n\nIt waits for you: retry, skip with outputs, or "
                "abort.")
        return Notification(f"escalation:{seq}", "escalation",
                            f"Needs a look: {playbook} / {step}", _cut(text),
                            link_to(base, f"/ui/inbox#{quote(f'{run}-{step}', safe='')}"),
                            run, playbook, step)
    if record_type in ("RunFailed", "RunCompensating") and run is not None:
        error = data.get("error") or {}
        if not isinstance(error, Mapping) or error.get("class") in QUIET_FAILURES:
            return None
        what = "failed" if record_type == "RunFailed" else "failed; undoing its steps"
        text = (f"Run {run} of {playbook} {what}: {error.get('class', 'error')}: "
                f"{error.get('message', '')}")
        return Notification(f"run_failed:{seq}", "run_failed", f"Run failed: {playbook}",
                            _cut(text), page, run, playbook)
    if record_type == "RunNeedsAttention" and run is not None:
        text = (f"Run {run} of {playbook} needs attention: {data.get('reason', '')}. "
                "Its steps could not all be undone.")
        return Notification(f"needs_attention:{seq}", "needs_attention",
                            f"Needs attention: {playbook}", _cut(text), page, run, playbook)
    if record_type == "EventRejected":
        name = str(data.get("playbook"))
        text = (f"Event {data.get('event')} (seq {data.get('seq')}) was rejected by {name}: "
                f"{data.get('error', '')}. Nothing was started.")
        return Notification(f"event_rejected:{seq}", "event_rejected",
                            f"Event rejected: {data.get('event')} by {name}", _cut(text),
                            link_to(base, "/ui/inbox"), None, name)
    return None


def budget_notification(period: str, when: str, spent: float, limit: float,
                        base: str | None) -> Notification:
    """Spend passed 80 % of ``policy.budget``: told once per day (``daily``) or month."""
    share = spent / limit * 100 if limit else 100.0
    return Notification(f"budget:{period}:{when}", "budget",
                        f"Budget {share:.0f}% spent ({period}, {when})",
                        f"Model spend is ${spent:.4f} of the ${limit:.4f} {period} budget "
                        f"(policy.budget.{period}_usd) for {when}. Calls that could pass it "
                        "are refused.", link_to(base, "/ui/spend"))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"

