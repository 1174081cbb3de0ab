"""Running ``kind: Test`` files: each case in a throwaway copy of the workspace.

A case gets a fresh folder with a copy of the workspace (never its ``.aios/`` state, nor its
``store:``: a case on a PostgreSQL workspace runs on the copy's own JSONL log, never in the
real database), the playbooks applied from their compiled IR, its doubles (:mod:`doubles`)
and a virtual clock: trio's ``MockClock`` makes retry delays and sleeps pass at once, and
the runtime's "now" follows it, jumping to the next due timer whenever the run waits for
one. The operator's decisions come from the case. What happened is then checked against
``expect``, each failure reported at its line in the test file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import trio.testing
from aiosrun.dsl import ir
from aiosrun.dsl.ir_codec import encode
from aiosrun.dsl.loader import Document
from aiosrun.runtime import clock
from aiosrun.runtime.engine import Engine
from aiosrun.runtime.log.eventlog import NewEvent
from aiosrun.runtime.results import Run
from aiosrun.runtime.testing.doubles import CaseDoubles
from aiosrun.runtime.testing.matching import mismatches
from aiosrun.runtime.workspace import WORKSPACE_FILE, load_settings

SKIPPED = (".aios", ".git", ".venv", "__pycache__")  # state, history, tools: not the business
MAX_DECISIONS = 200  # a case's rounds of deciding and resuming: a bound, not a loop forever


@dataclass
class CaseResult:
    file: str
    name: str
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    status: str = ""

    @property
    def passed(self) -> bool:
        return not self.failures


async def run_case(root: Path, doc: Document, index: int,
                   playbooks: Mapping[str, ir.Playbook]) -> CaseResult:
    """Run case ``index`` of the test document ``doc`` against the workspace at ``root``."""
    case = doc.data["cases"][index]
    result = CaseResult(doc.file, str(case["name"]))
    began = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="aiosrun-test-", dir=_scratch()))
    try:
        _copy_workspace(root, folder)
        await _run(folder, doc, index, case, playbooks, result)
    finally:
        clock.use_virtual(None)
        shutil.rmtree(folder, ignore_errors=True)
        result.seconds = time.perf_counter() - began
    return result


def _scratch() -> str | None:
    """A memory-backed folder for the copies when the machine has one: a case's files live
    for milliseconds and need no disk (and nothing of them must outlive it)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _copy_workspace(root: Path, folder: Path) -> None:
    """Everything of the workspace but its state (``.aios/``), its git history and tools."""
    for source in root.iterdir():
        if source.name in SKIPPED:
            continue
        if source.is_dir():
            shutil.copytree(source, folder / source.name, symlinks=True,
                            ignore=shutil.ignore_patterns(*SKIPPED))
        elif source.is_file():
            shutil.copy2(source, folder / source.name)
    settings = load_settings(root).data
    if "store" in settings:  # JSON is YAML: the copy's aios.yaml, checked, without it
        (folder / WORKSPACE_FILE).write_text(json.dumps(
            {k: v for k, v in settings.items() if k != "store"}, ensure_ascii=False), "utf-8")


async def _run(folder: Path, doc: Document, index: int, case: Mapping[str, Any],
               playbooks: Mapping[str, ir.Playbook], result: CaseResult) -> None:
    start = _parse_now(case.get("now"))
    origin = trio.current_time()
    jumped = [0.0]
    clock.use_virtual(lambda: start + dt.timedelta(
        seconds=trio.current_time() - origin + jumped[0]))
    async with Engine.open(folder) as engine:
        engine.ws.log.append_many([NewEvent("PlaybookApplied", {
            "name": p.name, "digest": p.digest, "source": p.source, "commit": None,
            "ir": encode(p)}) for p in playbooks.values()])
        smtp = bool(engine.ws.settings.adapter("email").get("smtp"))
        doubles = CaseDoubles(case.get("mocks") or {}, case.get("models") or {},
                              Path(doc.file).parent, smtp)
        engine.ws.doubles = doubles
        playbook = playbooks[doc.data["playbook"]]
        run = await engine.start(playbook.name, case.get("inputs"), event=case.get("event"))
        run = await _settle(engine, run, case.get("decisions") or {}, jumped)
        result.status = run.status
        family = [r for r in engine.ws.log.read()
                  if r.run == run.id or (r.run or "").startswith(f"{run.id}.")]
        emitted = [r.data["event"] for r in engine.ws.log.read()
                   if r.type == "EventEmitted"
                   and str((r.data.get("source") or {}).get("run", "")).startswith(run.id)]
        gates = [str(r.data["gate"]) for r in family if r.type == "GateOpened"]
        result.failures = _check(doc, index, case.get("expect") or {}, run, doubles, emitted,
                                 gates)


async def _settle(engine: Engine, run: Run, decisions: Mapping[str, str],
                  jumped: list[float]) -> Run:
    """Decide what the case decides, let due timers fire, until the run ends or nothing
    more can move it."""
    for _ in range(MAX_DECISIONS):
        if run.status != "waiting":
            return run
        moved = False
        for item in run.pending:
            leaf = str(item["id"]).rsplit("/", 1)[-1]  # match[2]/record -> record
            decision = decisions.get(str(item["id"])) or decisions.get(leaf)
            if item["via"] == "approve" and decision in ("approve", "reject"):
                method = engine.approve if decision == "approve" else engine.reject
                run = await method(run.id, str(item["id"]))
                moved = True
                break
            if item["via"] == "resolve" and decision in ("retry", "skip", "abort"):
                run = await engine.resolve(run.id, str(item["id"]), decision,
                                           {} if decision == "skip" else None)
                moved = True
                break
        if moved:
            continue
        due = [clock.parse(str(moment)) for item in run.pending
               for moment in (item.get("due_at"), item.get("timeout_at")) if moment]
        if not due:
            return run
        wait = (min(due) - clock.now()).total_seconds()
        jumped[0] += max(0.0, wait) + 0.001
        run = await engine.resume(run.id)
    return run


def _parse_now(text: Any) -> dt.datetime:
    if not text:
        return dt.datetime.now(dt.UTC)
    moment = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _check(doc: Document, index: int, expect: Mapping[str, Any], run: Run,
           doubles: CaseDoubles, emitted: Sequence[str], gates: Sequence[str]) -> list[str]:
    base = ("cases", index, "expect")
    found: list[tuple[tuple[str | int, ...], Any, Any]] = []
    if "status" in expect:
        found += mismatches(expect["status"], run.status, (*base, "status"))
    if "outputs" in expect:
        found += mismatches(expect["outputs"], run.outputs, (*base, "outputs"))
    steps = {s.id: s for s in reversed(run.steps)} | {s.path: s for s in run.steps}
    for step_id, wanted in (expect.get("steps") or {}).items():
        here = (*base, "steps", step_id)
        step = steps.get(step_id)
        if step is None:
            found.append((here, "the step to have run", "no such step in the run"))
            continue
        actual = {"status": step.status, "attempts": step.attempts, "outputs": step.outputs}
        for key in ("status", "attempts", "outputs"):
            if key in wanted:
                found += mismatches(wanted[key], actual[key], (*here, key))
    for action, count in (expect.get("calls") or {}).items():
        found += mismatches(count, doubles.calls.get(action, 0), (*base, "calls", action))
    if "events" in expect:
        found += mismatches(list(expect["events"]), list(emitted), (*base, "events"))
    if "gates" in expect:
        found += mismatches(list(expect["gates"]), list(gates), (*base, "gates"))
    lines = []
    for path, wanted, got in found:
        span = doc.span(path)
        what = ".".join(str(p) for p in path[3:])
        lines.append(f"{span.file}:{span.line}:{span.col}: expected {_show(wanted)}, got "
                     f"{_show(got)} ({what})")
    return lines


def _show(value: Any) -> str:
    if isinstance(value, str) and not value.startswith(("the ", "no such")):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)
