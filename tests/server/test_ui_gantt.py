"""The Gantt chart's geometry from a timeline tree (pure: no server, no browser)."""

from __future__ import annotations

from typing import Any

from aiosrun.runtime.server.ui.gantt import WIDTH, chart


def event(kind: str, at: float, path: str | None = None, **data: Any) -> dict[str, Any]:
    return {"type": kind, "at": at, "path": path, **data}


TREE = {"run": "r", "started_by": {"kind": "operator"}, "events": [
    event("RunStarted", 0.0),
    event("StepStarted", 0.0, "fetch", attempt=1),
    event("StepAttemptFailed", 1.0, "fetch", attempt=1, error_class="transient",
          message="503"),
    event("StepStarted", 2.0, "fetch", attempt=2),
    event("StepSucceeded", 3.0, "fetch"),
    event("StepStarted", 3.0, "review", attempt=1),
    event("GateOpened", 3.0, "review", gate="review"),
    event("GateDecided", 8.0, None, gate="review", decision="approved", comment="ok"),
    event("StepSucceeded", 8.0, "review"),
    event("StepStarted", 8.0, "send", attempt=1),
], "children": [{"run": "child-1", "events": [event("RunStarted", 8.5),
                                               event("RunSucceeded", 9.0)]}]}


def test_rows_bars_and_waits() -> None:
    drawn = chart(TREE, now=10.0)
    assert [r.label for r in drawn.rows] == ["fetch", "review", "send", "↳ run child-1"]
    fetch, review, send, child = drawn.rows
    assert [b.kind for b in fetch.bars] == ["failed", "ok"]
    assert fetch.bars[0].x == 0 and fetch.bars[0].width == WIDTH / 10
    assert "transient: 503" in fetch.bars[0].title
    assert [b.kind for b in review.bars] == ["ok", "gate"]
    assert review.bars[1].end == 8.0 and "approved after 5.0 s: ok" in review.bars[1].title
    assert send.bars[0].kind == "running" and send.bars[0].end == 10.0  # open until now
    assert child.link == "child-1" and child.bars[0].kind == "ok"
    assert drawn.ticks[-1] == (WIDTH, "10.0 s")


def test_a_finished_run_ends_at_its_last_record() -> None:
    drawn = chart({"run": "r", "events": TREE["events"][:5], "children": []}, now=None)
    assert drawn.total == 3.0 and len(drawn.rows) == 1
