"""Runtime speed, as numbers (no asserts):

- no-op steps per second in one run (target >= 5,000/s with group commit), and the same run
  in a workspace with a long history and crossing into a new segment (target: within 10 %);
- appends per second with `always` fsync, next to the raw fsync rate of this disk;
- 100 concurrent runs of 10 steps;
- the state of a run with 100,000 events, with and without a snapshot (target < 0.1 s with),
  beside the floor of reading its records or its snapshot file;
- the start of a run of a 20,000-step playbook (target < 0.5 s) in a new process: the
  version's first start in the workspace (which writes the decoded-IR cache) and later ones,
  and in a workspace already open, beside the floor of parsing its recorded IR;
- cached evaluations per second of a typical condition (target 150,000/s), beside the same
  condition written as plain Python over the same dictionaries;
- the cancel check a running run makes (every 0.5 s) in a workspace with a long history while
  other runs append, beside a ``stat`` of the log's segment (target: O(1), no record read);
- the process time of ``aiosrun status RUN`` and ``aiosrun runs`` on a fresh workspace
  (target < 150 ms), beside ``python -c pass`` (``bench/history.py`` has them on 1,000,000
  records);
- where LangGraph (no checkpointer, InMemorySaver, SqliteSaver), DBOS (SQLite) or Prefect
  can be imported, the same 200-step sequential flow in them.

The peers are the ``bench`` extra: ``.venv/bin/pip install -e '.[bench]'``, then
``.venv/bin/python bench/runtime.py``. The machine is shared: compare rows of one run.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from aiosrun.dsl.ir_codec import encode
from aiosrun.dsl.loader import load_text
from aiosrun.dsl.validate import validate_document
from aiosrun.runtime.coordinator.interpreter import Runner
from aiosrun.runtime.coordinator.runs import start_or_load
from aiosrun.runtime.log.eventlog import EventLog, NewEvent
from aiosrun.runtime.log.projections import fold_run
from aiosrun.runtime.workspace import Workspace


def workspace(root: Path, fsync: str = "group", segment_bytes: int | None = None) -> Workspace:
    segments = f", segment_bytes: {segment_bytes}" if segment_bytes else ""
    (root / "aios.yaml").write_text(
        f"apiVersion: aiosrun/v1\nkind: Workspace\nlog: {{fsync: {fsync}{segments}}}\n")
    return Workspace(root)


def apply(ws: Workspace, name: str, steps: int) -> None:
    body = "".join(f"  - id: s{i}\n    set: {{v: {i}}}\n" for i in range(steps))
    text = f"apiVersion: aiosrun/v1\nkind: Playbook\nname: {name}\nsteps:\n{body}"
    playbook = validate_document(load_text(text, name))
    ws.log.append(NewEvent("PlaybookApplied", {"name": name, "digest": playbook.digest,
                                               "source": name, "ir": encode(playbook)}))


def noop_steps(steps: int = 3000, history: int = 300_000, repeat: int = 3) -> None:
    """One run of ``steps`` no-op steps, in a workspace opened anew: fresh; after
    ``history`` records of earlier runs; and with its records crossing into a new segment
    (the segment it starts in already holds earlier records). Each workspace is built once
    and copied for each of ``repeat`` rounds, the three taken in turn; the best of each."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = _built(Path(tmp) / "fresh", steps)
        run_bytes = _steps_rate(_copy(fresh))[1]
        segment = 4 * run_bytes
        shapes = [fresh, _built(Path(tmp) / "history", steps, history=history),
                  _built(Path(tmp) / "two", steps, segment_bytes=segment,
                         fill=segment - run_bytes // 2)]
        best = [0.0, 0.0, 0.0]
        cpu = [0.0, 0.0, 0.0]
        for _ in range(repeat):
            for i, template in enumerate(shapes):
                rate, _, per_cpu = _steps_rate(_copy(template))
                best[i], cpu[i] = max(best[i], rate), max(cpu[i], per_cpu)
    print(f"no-op steps in one run (group commit):   {best[0]:>10,.0f} steps/s "
          f"[target 5,000] ({cpu[0]:,.0f} per CPU second)")
    for label, i in ((f"after {history:,} records of history: ", 1),
                     ("spanning two segments:                ", 2)):
        print(f"  {label} {best[i]:>10,.0f} steps/s ({best[i] / best[0]:.0%} of fresh) "
              f"[target >= 90 %] (per CPU second: {cpu[i] / cpu[0]:.0%} of fresh)")


def _built(root: Path, steps: int, *, history: int = 0, segment_bytes: int | None = None,
           fill: int = 0) -> Path:
    root.mkdir()
    with workspace(root, segment_bytes=segment_bytes) as ws:
        apply(ws, "noop", steps)
        _history(ws, history, fill)
    return root


def _copy(template: Path) -> Path:
    copy = template.with_name(f"{template.name}-{time.monotonic_ns()}")
    shutil.copytree(template, copy)
    os.sync()  # the copy's pages written back now, not by the run's first fsyncs
    return copy


def _steps_rate(root: Path) -> tuple[float, int, float]:
    """Steps per second of one run of ``noop`` (then the copy is removed), the bytes its
    records took, and steps per CPU second of this process (the machine is shared: wall
    time follows the cores the run got)."""
    log = root / ".aios" / "log"
    before = sum(p.stat().st_size for p in log.glob("*.jsonl"))
    with Workspace(root) as ws:
        playbook, state = start_or_load(ws, "noop", {})
        steps = len(playbook.steps)
        started, cpu = time.perf_counter(), time.process_time()
        final = trio.run(Runner(ws, playbook, state).execute)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert final.status == "succeeded"
    grown = sum(p.stat().st_size for p in log.glob("*.jsonl")) - before
    shutil.rmtree(root)
    return steps / elapsed, grown, steps / cpu


def _history(ws: Workspace, records: int, fill: int) -> None:
    """Earlier runs of ten steps each: ``records`` records, or until the segment being
    written holds ``fill`` bytes."""
    log = ws.root / ".aios" / "log"
    number = 0
    while number * 22 < records or (fill and max(log.glob("*.jsonl")).stat().st_size < fill):
        batch = []
        for _ in range(50):
            number += 1
            run = f"h{number:07d}"
            batch.append(NewEvent("RunStarted", {"playbook": "noop", "digest": "d",
                                                 "inputs": {}}, run=run))
            for i in range(10):
                batch += [NewEvent("StepStarted", {"path": f"s{i}", "id": f"s{i}",
                                                   "attempt": 1, "key": f"{run}-{i}"}, run=run),
                          NewEvent("StepSucceeded", {"path": f"s{i}", "id": f"s{i}",
                                                     "outputs": {"v": i}, "attempts": 1},
                                   run=run)]
            batch.append(NewEvent("RunSucceeded", {"outputs": {}}, run=run))
        ws.log.append_many(batch)


def fsync_rates(count: int = 300) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "raw"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        line = b"x" * 340 + b"\n"
        started = time.perf_counter()
        for _ in range(count):
            os.write(fd, line)
            os.fsync(fd)
        raw = count / (time.perf_counter() - started)
        os.close(fd)
        log = EventLog(Path(tmp) / "log", fsync="always").open()
        started = time.perf_counter()
        for i in range(count):
            log.append(NewEvent("Bench", {"i": i, "pad": "x" * 200}, run="r"))
        always = count / (time.perf_counter() - started)
        log.close()
        log = EventLog(Path(tmp) / "log2", fsync="group").open()
        started = time.perf_counter()
        for i in range(count * 20):
            log.append(NewEvent("Bench", {"i": i, "pad": "x" * 200}, run="r"))
        log.close()
        group = count * 20 / (time.perf_counter() - started)
        steps, fsyncs = _always_steps(Path(tmp) / "steps", count)
    print(f"raw write+fsync of a 340-byte line:      {raw:>10,.0f} /s")
    print(f"log appends, fsync always:               {always:>10,.0f} /s "
          f"({always / raw:.0%} of raw)")
    print(f"no-op steps in one run, fsync always:    {steps:>10,.0f} steps/s "
          f"({steps / raw:.0%} of raw fsyncs) [target >= 90 %] ({fsyncs:.2f} fsyncs per step)")
    print(f"log appends, group commit (5 ms window): {group:>10,.0f} /s")


def _always_steps(root: Path, steps: int) -> tuple[float, float]:
    """Steps per second of one run of no-op steps with ``fsync: always``, and the fsyncs
    each step cost (counted through ``os.fsync``)."""
    root.mkdir()
    with workspace(root, fsync="always") as ws:
        apply(ws, "noop", steps)
    os.sync()
    counted = [0]
    real = os.fsync

    def counting(fd: Any) -> None:
        counted[0] += 1
        real(fd)

    with Workspace(root) as ws:
        playbook, state = start_or_load(ws, "noop", {})
        os.fsync = counting
        try:
            started = time.perf_counter()
            final = trio.run(Runner(ws, playbook, state).execute)
            elapsed = time.perf_counter() - started
        finally:
            os.fsync = real
        assert final.status == "succeeded"
    return steps / elapsed, counted[0] / steps


def concurrent_runs(runs: int = 100, steps: int = 10) -> None:
    with tempfile.TemporaryDirectory() as tmp, workspace(Path(tmp)) as ws:
        apply(ws, "small", steps)
        prepared = [start_or_load(ws, "small", {}) for _ in range(runs)]

        async def all_runs() -> list[Any]:
            results: list[Any] = []

            async def one(playbook: Any, state: Any) -> None:
                results.append(await Runner(ws, playbook, state).execute())

            async with trio.open_nursery() as nursery:
                for playbook, state in prepared:
                    nursery.start_soon(one, playbook, state)
            return results

        started = time.perf_counter()
        results = trio.run(all_runs)
        elapsed = time.perf_counter() - started
        assert all(r.status == "succeeded" for r in results)
    print(f"{runs} concurrent runs x {steps} steps:        {elapsed:>10.2f} s "
          f"({runs * steps / elapsed:,.0f} steps/s)")


def resume_time(events: int = 100_000) -> None:
    with tempfile.TemporaryDirectory() as tmp, workspace(Path(tmp)) as ws:
        steps = events // 2
        apply(ws, "long", 10)
        _, state = start_or_load(ws, "long", {})
        batch = []
        for i in range(steps):
            batch += [NewEvent("StepStarted", {"path": f"x{i}", "id": f"x{i}", "attempt": 1,
                                               "key": f"k{i}"}, run=state.id),
                      NewEvent("StepSucceeded", {"path": f"x{i}", "id": f"x{i}",
                                                 "outputs": {"v": i}, "attempts": 1},
                               run=state.id)]
            if len(batch) >= 5000:
                ws.log.append_many(batch)
                batch = []
        ws.log.append_many(batch)
        ws.log.sync()
        started = time.perf_counter()
        cold = ws.run_state(state.id)
        without = time.perf_counter() - started
        started = time.perf_counter()
        lines = 0
        for segment in sorted((Path(tmp) / ".aios" / "log").glob("*.jsonl")):
            with segment.open("rb") as stream:
                for line in stream:
                    json.loads(line)
                    lines += 1
        parse_floor = time.perf_counter() - started
        saving = min(_timed(lambda: ws.save_run_snapshot(cold)) for _ in range(3))
        ws.log.append_many([NewEvent("StepStarted", {"path": "y", "id": "y", "attempt": 1,
                                                     "key": "k"}, run=state.id)])
        with_snapshot = min(_timed(lambda: ws.run_state(state.id)) for _ in range(3))
        warm = ws.run_state(state.id)
        snapshot = next((Path(tmp) / ".aios" / "snapshots").rglob(f"{state.id}.json"))
        read_floor = min(_timed(snapshot.read_bytes) for _ in range(3))
        size = snapshot.stat().st_size
        assert len(warm.steps) == steps + 1 and fold_run(state.id, []).id == state.id
    print(f"state of a {events:,}-event run, no snapshot:  {without:>8.3f} s "
          f"(floor: json.loads of the log's {lines:,} lines {parse_floor:.3f} s)")
    print(f"state of a {events:,}-event run, snapshot:     {with_snapshot:>8.3f} s "
          f"[target < 0.1 s] (floor: reading its {size / 1e6:.1f} MB "
          f"{read_floor:.3f} s; saving it took {saving:.3f} s)")


def _timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


_START = """
import sys, time
from pathlib import Path
from aiosrun.runtime.coordinator.interpreter import Runner
from aiosrun.runtime.coordinator.runs import start_or_load
from aiosrun.runtime.workspace import Workspace
with Workspace(Path(sys.argv[1])) as ws:
    started = time.perf_counter()
    playbook, state = start_or_load(ws, sys.argv[2], {})
    Runner(ws, playbook, state)
    print(time.perf_counter() - started)
"""


def _start_in_new_process(root: Path, name: str) -> float:
    """A run start (``RunStarted`` and the runner ready) in a process of its own, with the
    workspace opened first (imports and open are not counted)."""
    done = subprocess.run([sys.executable, "-c", _START, str(root), name], check=True,
                          capture_output=True, text=True)
    return float(done.stdout)


def run_start(steps: int = 20_000) -> None:
    """The start of a run of a very long playbook: in a new process (the workspace opened
    anew, its log folded), the first start of the version in the workspace (decoded from
    its record, the decoded-IR cache written) and the later ones (read from that cache);
    and in a workspace already open (decoded once per process)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with workspace(root) as ws:
            apply(ws, "big", steps)
        record = max((Path(tmp) / ".aios" / "log").glob("*.jsonl")).read_bytes()
        floor = _timed(lambda: json.loads(max(record.split(b"\n"), key=len)))
        first = _start_in_new_process(root, "big")
        later = statistics.median(_start_in_new_process(root, "big") for _ in range(3))
        with Workspace(root) as ws:
            Runner(ws, *start_or_load(ws, "big", {}))
            open_ws = min(_timed(lambda ws=ws: Runner(ws, *start_or_load(ws, "big", {})))
                          for _ in range(3))
    print(f"run start, {steps:,}-step playbook, new process: first {first:.3f} s, later "
          f"{later:.3f} s [target < 0.5 s]; workspace open: {open_ws:.3f} s "
          f"(floor: json.loads of its recorded IR {floor:.3f} s)")


def cancel_check(history: int = 300_000, checks: int = 2000) -> None:
    """The check for a cancel request, as a running run makes it, with a record of another
    run appended before each (as concurrent runs do): it reads the run's records only when
    the log holds a new one of that run."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with workspace(root) as ws:
            apply(ws, "noop", 3)
            _history(ws, history, 0)
        with Workspace(root) as ws:
            playbook, state = start_or_load(ws, "noop", {})
            runner = Runner(ws, playbook, state)
            other = NewEvent("StepStarted", {"path": "s0", "id": "s0", "attempt": 1,
                                             "key": "k"}, run="h0000001")
            segment = max((root / ".aios" / "log").glob("*.jsonl"))

            async def checks_made() -> tuple[float, int]:
                spent, read = 0.0, 0
                for _ in range(checks):
                    ws.log.append(other, durable=False)
                    seen = state.last_seq
                    runner._last_cancel_check = float("-inf")
                    started = time.perf_counter()
                    runner.cancel_requested()
                    spent += time.perf_counter() - started
                    read += state.last_seq != seen
                return spent / checks, read

            per_check, read = trio.run(checks_made)
            floor = min(_timed(lambda: os.stat(segment)) for _ in range(checks))
    print(f"cancel check, {history:,} records of history: {per_check * 1e6:>8.1f} us "
          f"({read} of {checks} checks read a record) [target O(1)] "
          f"(floor: stat of the segment {floor * 1e6:.1f} us)")


def cli_time(repeat: int = 5) -> None:
    """Process wall time of the read commands in a fresh workspace holding one run."""
    command = str(Path(sys.executable).with_name("aiosrun"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with workspace(root) as ws:
            apply(ws, "noop", 5)
            playbook, state = start_or_load(ws, "noop", {})
            trio.run(Runner(ws, playbook, state).execute)

        def wall(*args: str) -> float:
            return statistics.median(_timed(lambda: subprocess.run(
                list(args), cwd=root, check=True, capture_output=True)) for _ in range(repeat))

        status = wall(command, "status", state.id)
        runs = wall(command, "runs")
        floor = wall(sys.executable, "-c", "pass")
    print(f"CLI process time, status / runs:       {status * 1000:>6.0f} / {runs * 1000:.0f} ms "
          f"[target < 150 ms] (floor: python -c pass {floor * 1000:.0f} ms)")


def expression_rate(seconds: float = 1.0) -> None:
    from aiosrun.dsl.expressions import evaluate

    condition = "steps.score.outputs.confidence >= 0.8 && inputs.customer.plan == 'pro'"
    contexts: dict[str, Any] = {
        "inputs": {"customer": {"email": "ada@example.com", "name": "Ada", "plan": "pro"}},
        "steps": {"score": {"outputs": {"confidence": 0.91}, "outcome": "success"}},
        "run": {"id": "r1"}, "vars": {}, "secrets": {}, "env": {}, "event": {},
    }

    def plain() -> bool:
        c = contexts
        return bool(c["steps"]["score"]["outputs"]["confidence"] >= 0.8
                    and c["inputs"]["customer"]["plan"].upper() == "PRO")

    assert evaluate(condition, contexts) is True and plain()
    rates = []
    for work in (lambda: evaluate(condition, contexts), plain):
        count = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            for _ in range(500):
                work()
            count += 500
        rates.append(count / (time.perf_counter() - started))
    print(f"expressions, cached evaluations:         {rates[0]:>10,.0f} /s [target 150,000] "
          f"(floor: the condition as plain Python {rates[1]:,.0f} /s)")


def sequential_flow(steps: int = 200, repeat: int = 5) -> float:
    """aiosrun's rate on the peers' flow: 200 sequential no-op steps in one run."""
    with tempfile.TemporaryDirectory() as tmp, workspace(Path(tmp)) as ws:
        apply(ws, "flow", steps)
        best = 0.0
        for _ in range(repeat):
            playbook, state = start_or_load(ws, "flow", {})
            started = time.perf_counter()
            trio.run(Runner(ws, playbook, state).execute)
            best = max(best, steps / (time.perf_counter() - started))
    print(f"aiosrun, {steps} sequential steps, durable log: {best:>10,.0f} steps/s")
    return best


def peers(ours: float, steps: int = 200) -> None:
    try:
        from langgraph.graph import END, START, StateGraph  # type: ignore[import-not-found]
    except ImportError:
        print("LangGraph: not installed (pip install -e '.[bench]' to compare)")
    else:
        graph = StateGraph(dict)
        names = [f"s{i}" for i in range(steps)]
        for name in names:
            graph.add_node(name, lambda state: {"v": 1})
        graph.add_edge(START, names[0])
        for a, b in itertools.pairwise(names):
            graph.add_edge(a, b)
        graph.add_edge(names[-1], END)
        for label, saver in checkpointers():
            compiled = graph.compile(checkpointer=saver)
            best = 0.0
            for attempt in range(5):
                config = {"recursion_limit": steps + 10,
                          "configurable": {"thread_id": f"t{attempt}"}}
                started = time.perf_counter()
                compiled.invoke({"v": 0}, config)
                best = max(best, steps / (time.perf_counter() - started))
            print(f"LangGraph, {steps} sequential nodes, {label}: {best:>10,.0f} steps/s "
                  f"(aiosrun / LangGraph = {ours / best:.2f})")
    dbos_flow(ours, steps)
    try:
        import prefect  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        print("Prefect: not installed (pip install prefect to compare)")
    else:
        print("Prefect: installed, but starting its server is left out of this script")


def dbos_flow(ours: float, steps: int) -> None:
    """The same flow as a DBOS workflow of ``steps`` steps, its system database on SQLite
    (DBOS records each step's output there before the next one runs, as aiosrun does)."""
    try:
        from dbos import DBOS  # type: ignore[import-not-found]
    except ImportError:
        print("DBOS: not installed (pip install -e '.[bench]' to compare)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        DBOS(config={"name": "bench", "system_database_url": f"sqlite:///{tmp}/dbos.sqlite",
                     "log_level": "WARNING"})

        @DBOS.step()  # type: ignore[untyped-decorator]
        def noop(i: int) -> int:
            return i

        @DBOS.workflow()  # type: ignore[untyped-decorator]
        def flow(count: int) -> int:
            for i in range(count):
                noop(i)
            return count

        DBOS.launch()
        try:
            best = 0.0
            for _ in range(3):
                started = time.perf_counter()
                flow(steps)
                best = max(best, steps / (time.perf_counter() - started))
        finally:
            DBOS.destroy()
    print(f"DBOS, {steps} sequential steps, SQLite:   {best:>10,.0f} steps/s "
          f"(aiosrun / DBOS = {ours / best:.2f})")


def checkpointers() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = [("no checkpointer", None)]
    try:
        from langgraph.checkpoint.memory import InMemorySaver  # type: ignore[import-not-found]
        found.append(("in-memory checkpointer", InMemorySaver()))
    except ImportError:
        pass
    try:
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver  # type: ignore[import-not-found]
        connection = sqlite3.connect(":memory:", check_same_thread=False)
        found.append(("SQLite checkpointer", SqliteSaver(connection)))
    except ImportError:
        pass
    return found


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    expression_rate()
    run_start()
    resume_time()
    noop_steps()
    fsync_rates()
    cancel_check()
    concurrent_runs()
    cli_time()
    peers(sequential_flow())


if __name__ == "__main__":
    main()
