"""A run's timeline as a Gantt chart: rows of bars in SVG units, computed from the
timeline tree the Engine gives (``Engine.timeline``), drawn by ``templates/_gantt.html``.

One row per step (in the order steps first started) with a bar per attempt, coloured by
how it ended; the time a step spent waiting (a gate, an escalation, a wait for an event or
a timer) is a shaded bar of its own kind; child runs get a row that links to their page.
Pure: the same tree gives the same picture, so a test can check the geometry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

WIDTH = 380.0  # viewBox units; the SVG scales to the page's width
LABEL_HEIGHT = 13.0
BAR_HEIGHT = 12.0
ROW_HEIGHT = LABEL_HEIGHT + BAR_HEIGHT + 7.0
AXIS_HEIGHT = 16.0
MIN_BAR = 1.5
ENDS = {"StepSucceeded": "ok", "StepFailed": "failed", "StepAttemptFailed": "failed",
        "StepCancelled": "cancelled"}
WAITS = {"GateOpened": "gate", "EscalationOpened": "escalation", "WaitOpened": "wait"}
WAIT_ENDS = {"GateDecided", "EscalationResolved", "WaitSatisfied"}


@dataclass
class Bar:
    start: float
    end: float | None
    kind: str  # ok | failed | cancelled | running | skipped | gate | escalation | wait
    title: str
    x: float = 0.0
    width: float = 0.0


@dataclass
class Row:
    label: str
    bars: list[Bar] = field(default_factory=list)
    link: str | None = None  # a child run's id
    y: float = 0.0


@dataclass
class Chart:
    rows: list[Row]
    total: float  # seconds the chart spans
    height: float
    ticks: list[tuple[float, str]]
    width: float = WIDTH


def seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def chart(tree: Mapping[str, Any], now: float | None) -> Chart:
    """The chart of a timeline tree; ``now`` (seconds since the run started) ends the bars
    still open, for a run that has not finished (None: they end at the last record)."""
    rows: dict[str, Row] = {}
    last = _rows(tree, rows, "")
    for child in tree.get("children") or ():
        row = Row(f"↳ run {child.get('run')}", link=str(child.get("run")))
        events = child.get("events") or []
        if events:
            end = float(events[-1]["at"])
            last = max(last, end)
            row.bars.append(Bar(float(events[0]["at"]), end, _child_kind(events),
                                f"child run {child.get('run')}"))
        rows[f"run:{child.get('run')}"] = row
    end = max(last, now or 0.0, 0.001)
    for row in rows.values():
        for bar in row.bars:
            if bar.end is None:
                bar.end = end
                if bar.kind in ("ok", "failed"):
                    bar.kind = "running"
    scale = WIDTH / end
    y = 0.0
    for row in rows.values():
        row.y = y
        for bar in row.bars:
            bar.x = round(bar.start * scale, 2)
            bar.width = round(max(MIN_BAR, ((bar.end or end) - bar.start) * scale), 2)
            bar.x = min(bar.x, WIDTH - bar.width)
        y += ROW_HEIGHT
    ticks = [(round(WIDTH * i / 4, 2), seconds(end * i / 4)) for i in range(5)]
    return Chart(list(rows.values()), end, y + AXIS_HEIGHT, ticks)


def _rows(tree: Mapping[str, Any], rows: dict[str, Row], prefix: str) -> float:
    """Fill ``rows`` from one run's events; returns the time of its last event."""
    running: dict[str, Bar] = {}
    waiting: dict[str, Bar] = {}
    gate_paths: dict[str, str] = {}
    last = 0.0
    for event in tree.get("events") or ():
        kind, path, at = event.get("type"), event.get("path"), float(event.get("at") or 0)
        last = max(last, at)
        if kind == "GateOpened":
            path = path or event.get("gate")
            gate_paths[str(event.get("gate"))] = str(path)
        elif kind in ("GateDecided", "GateEscalated"):
            path = gate_paths.get(str(event.get("gate")), event.get("gate"))
        if not isinstance(path, str):
            continue
        row = rows.setdefault(path, Row(prefix + path))
        if kind == "StepStarted":
            attempt = event.get("attempt") or 1
            bar = Bar(at, None, "ok", f"{path}: attempt {attempt}")
            running[path] = bar
            row.bars.append(bar)
        elif kind in ENDS and path in running:
            bar = running.pop(path)
            bar.end, bar.kind = at, ENDS[kind]
            if event.get("error_class"):
                bar.title += f" — {event['error_class']}: {event.get('message', '')}"
            bar.title += f" ({seconds(at - bar.start)})"
        elif kind == "StepSkipped":
            row.bars.append(Bar(at, at, "skipped", f"{path}: skipped"))
        elif kind in WAITS:
            bar = Bar(at, None, WAITS[kind], f"{path}: waiting ({WAITS[kind]})")
            waiting[path] = bar
            row.bars.append(bar)
        elif kind == "GateEscalated" and path in waiting:
            waiting[path].end = at
            bar = Bar(at, None, "escalation", f"{path}: escalated (timed out)")
            waiting[path] = bar
            row.bars.append(bar)
        elif kind in WAIT_ENDS and path in waiting:
            bar = waiting.pop(path)
            bar.end = at
            what = event.get("decision") or event.get("action") or "done"
            bar.title += f" — {what} after {seconds(at - bar.start)}"
            if event.get("comment"):
                bar.title += f": {event['comment']}"
    return last


def _child_kind(events: list[Mapping[str, Any]]) -> str:
    final = events[-1].get("type")
    if final == "RunSucceeded":
        return "ok"
    if final in ("RunFailed", "RunCompensated", "RunNeedsAttention", "RunCancelled"):
        return "failed"
    return "running"
