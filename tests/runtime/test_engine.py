"""The Engine's API end to end, on real workspaces on disk: starting, gates, idempotency,
event ids, errors, live subscriptions, and two Engines in two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio
from aiosrun.runtime import Engine
from aiosrun.runtime.errors import (
    BadRequest,
    Conflict,
    EngineError,
    InvalidInputs,
    NotFound,
    PlaybookNotFound,
)
from aiosrun.runtime.workspace import Workspace

GATED = """\
apiVersion: aiosrun/v1
kind: Playbook
name: gated
inputs:
  who: {type: string}
steps:
  - id: hello
    uses: debug.echo
    with: {value: "hi ${{ inputs.who }}"}
  - id: review
    gate: {message: "Greet ${{ inputs.who }}?"}
  - id: done
    uses: debug.echo
    with: {value: "${{ steps.review.outputs.decision }}"}
outputs:
  said: ${{ steps.hello.outputs.value }}
"""

ON_SIGNUP = """\
apiVersion: aiosrun/v1
kind: Playbook
name: on-signup
on: {event: customer.signed_up}
inputs:
  email: {type: string}
steps:
  - id: greet
    uses: files.append
    with: {path: greeted.txt, line: "${{ inputs.email }}"}
"""

WAITER = """\
apiVersion: aiosrun/v1
kind: Playbook
name: waiter
steps:
  - id: paid
    wait: {event: invoice.paid}
  - id: after
    uses: debug.echo
    with: {value: done}
"""

SLOW = """\
apiVersion: aiosrun/v1
kind: Playbook
name: slow
steps:
  - id: one
    uses: debug.echo
    with: {value: 1}
  - id: nap
    uses: debug.sleep
    with: {seconds: 0.6}
  - id: two
    uses: debug.echo
    with: {value: 2}
"""

FAILING = """\
apiVersion: aiosrun/v1
kind: Playbook
name: failing
steps:
  - id: flaky
    uses: debug.fail
    with: {times: 5, error: permanent}
    escalate: {after_attempts: 1}
"""


def make_workspace(root: Path, store: str = "", **playbooks: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n" + store)
    (root / "playbooks").mkdir(exist_ok=True)
    for name, text in playbooks.items():
        (root / "playbooks" / f"{name}.yaml").write_text(text)
    return root


def log_records(root: Path) -> list[dict[str, Any]]:
    """The whole log, from whichever store the workspace names."""
    ws = Workspace(root)
    try:
        return [r.to_json() for r in ws.log.read()]
    finally:
        ws.close()


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AIOS_WORKSPACE"}
    return subprocess.run([sys.executable, "-m", "aiosrun.runtime", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_start_stops_at_the_gate_and_approve_finishes_the_run(tmp_path: Path, store: str) -> None:
    root = make_workspace(tmp_path / "shop", store, gated=GATED)

    async def main() -> tuple[Any, Any]:
        async with Engine.open(root) as engine:
            applied = await engine.apply()
            assert [c.sign for c in applied.changes] == ["+"]
            run = await engine.start("gated", inputs={"who": "Ada"})
            assert run.status == "waiting" and run.waiting is not None
            assert run.waiting["id"] == "review" and run.waiting["message"] == "Greet Ada?"
            inbox = await engine.inbox()
            assert [(i.run, i.kind) for i in inbox] == [(run.id, "gate")]
            done = await engine.approve(run.id, "review", comment="ok")
            return run, done

    _, done = trio.run(main)
    assert done.status == "succeeded" and done.outputs == {"said": "hi Ada"}
    assert [s.id for s in done.steps] == ["hello", "review", "done"]
    assert done.steps[2].outputs == {"value": "approved"}
    shown = cli(root, "status", done.id, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == done.to_json()


def test_the_same_idempotency_key_returns_the_same_run(tmp_path: Path, store: str) -> None:
    root = make_workspace(tmp_path / "shop", store, gated=GATED)

    async def main() -> list[str]:
        async with Engine.open(root) as engine:
            await engine.apply()
            first = await engine.start("gated", {"who": "Ada"}, idempotency_key="order-17")
            again = await engine.start("gated", {"who": "Bob"}, idempotency_key="order-17")
            other = await engine.start("gated", {"who": "Cy"}, idempotency_key="order-18")
            assert again.status == "waiting" and again.steps == first.steps
            return [first.id, again.id, other.id]

    first, again, other = trio.run(main)
    assert first == again != other
    started = [r for r in log_records(root) if r["type"] == "RunStarted"]
    assert len(started) == 2


def test_an_event_id_is_recorded_and_dispatched_once(tmp_path: Path, store: str) -> None:
    root = make_workspace(tmp_path / "shop", store, **{"on-signup": ON_SIGNUP})

    async def main() -> list[Any]:
        async with Engine.open(root) as engine:
            await engine.apply()
            first = await engine.emit("customer.signed_up", {"email": "ada@example.com"},
                                      id="delivery-1", wait=True)
            second = await engine.emit("customer.signed_up", {"email": "ada@example.com"},
                                       id="delivery-1", wait=True)
            third = await engine.emit("customer.signed_up", {"email": "bob@example.com"},
                                      id="delivery-2", wait=True)
            return [first, second, third]

    first, second, third = trio.run(main)
    assert not first.duplicate and [r.status for r in first.runs] == ["succeeded"]
    assert second.duplicate and second.seq == first.seq and second.runs == ()
    assert second.to_json() == {"seq": first.seq, "runs": [], "duplicate": True}
    assert not third.duplicate
    assert (root / "greeted.txt").read_text() == "ada@example.com\nbob@example.com\n"
    emitted = [r for r in log_records(root) if r["type"] == "EventEmitted"]
    assert [r["data"]["id"] for r in emitted] == ["delivery-1", "delivery-2"]


def test_emit_without_wait_runs_the_triggered_playbook_in_the_nursery(tmp_path: Path,
                                                                    store: str) -> None:
    root = make_workspace(tmp_path / "shop", store, **{"on-signup": ON_SIGNUP})

    async def main() -> Any:
        async with Engine.open(root) as engine:
            await engine.apply()
            result = await engine.emit("customer.signed_up", {"email": "ada@example.com"})
            assert result.dispatched and result.runs == ()
            return result

    trio.run(main)  # leaving the `async with` waited for the triggered run
    assert (root / "greeted.txt").read_text() == "ada@example.com\n"


def test_a_wait_is_woken_by_the_event(tmp_path: Path, store: str) -> None:
    root = make_workspace(tmp_path / "shop", store, waiter=WAITER)

    async def main() -> tuple[Any, Any]:
        async with Engine.open(root) as engine:
            await engine.apply()
            run = await engine.start("waiter")
            assert run.status == "waiting" and run.waiting is not None
            assert run.waiting["kind"] == "wait"
            woke = await engine.emit("invoice.paid", {"amount": 49}, wait=True)
            return run, woke

    run, woke = trio.run(main)
    assert [(r.id, r.status) for r in woke.runs] == [(run.id, "succeeded")]


def test_conflicts_and_missing_things_are_errors_of_their_own(tmp_path: Path, store: str) -> None:
    root = make_workspace(tmp_path / "shop", store, gated=GATED, failing=FAILING)

    async def main() -> None:
        async with Engine.open(root) as engine:
            await engine.apply()
            run = await engine.start("gated", {"who": "Ada"})
            with pytest.raises(NotFound, match="no run 'nope'"):
                await engine.get("nope")
            with pytest.raises(NotFound, match="no open gate 'other'"):
                await engine.approve(run.id, "other")
            await engine.approve(run.id, "review")
            with pytest.raises(Conflict, match="no open gate 'review'"):
                await engine.reject(run.id, "review")
            with pytest.raises(NotFound, match="no open escalation for step 'hello'"):
                await engine.resolve(run.id, "hello", "retry")
            with pytest.raises(BadRequest):
                await engine.resolve(run.id, "hello", "explode")
            with pytest.raises(Conflict, match="has already ended"):
                await engine.cancel(run.id)
            with pytest.raises(PlaybookNotFound, match="no applied playbook named 'ghost'"):
                await engine.start("ghost")
            with pytest.raises(InvalidInputs) as invalid:
                await engine.start("gated", {"who": 5, "extra": True})
            assert len(invalid.value.problems) == 2
            assert "unknown input 'extra'" in invalid.value.problems[0]
            assert "input 'who'" in invalid.value.problems[1]
            failing = await engine.start("failing")
            assert failing.status == "waiting" and failing.waiting is not None
            assert failing.waiting["kind"] == "escalation"
            aborted = await engine.resolve(failing.id, "flaky", "abort")
            assert aborted.status == "compensated"
            with pytest.raises(Conflict, match="no open escalation for step 'flaky'"):
                await engine.resolve(failing.id, "flaky", "retry")
            with pytest.raises(BadRequest, match="not an event name"):
                await engine.emit("not an event")

    trio.run(main)
    for kind in (NotFound, Conflict, InvalidInputs, BadRequest):
        assert issubclass(kind, EngineError)


def test_no_workspace_is_not_found(tmp_path: Path) -> None:
    async def main() -> None:
        async with Engine.open(tmp_path / "nothing-here"):
            raise AssertionError("opened a folder without aios.yaml")

    with pytest.raises(NotFound, match="no workspace here"):
        trio.run(main)


def test_subscribe_sees_records_while_the_run_executes(tmp_path: Path, store: str) -> None:
    root = make_workspace(tmp_path / "shop", store, slow=SLOW)

    async def main() -> tuple[list[str], list[str]]:
        async with Engine.open(root) as engine:
            await engine.apply()
            seen: list[str] = []
            at_first_step: list[str] = []
            run = await engine.start("slow", wait=False)

            async def follow() -> None:
                async for record in engine.subscribe(run.id):
                    seen.append(record.type)
                    if record.type == "StepSucceeded" and record.data["path"] == "one":
                        current = await engine.get(run.id)
                        at_first_step.append(current.status)
                    if record.type == "RunSucceeded":
                        return

            with trio.fail_after(20):
                await follow()
            return seen, at_first_step

    seen, at_first_step = trio.run(main)
    assert at_first_step == ["running"]  # delivered live, not after the run ended
    assert seen[0] == "RunStarted" and seen[-1] == "RunSucceeded"
    assert seen.count("StepSucceeded") == 3


def test_subscribe_after_a_seq_starts_after_it(tmp_path: Path, store: str) -> None:
    root = make_workspace(tmp_path / "shop", store, gated=GATED)

    async def main() -> list[int]:
        async with Engine.open(root) as engine:
            await engine.apply()
            run = await engine.start("gated", {"who": "Ada"})
            seqs: list[int] = []
            with trio.move_on_after(0.5):
                async for record in engine.subscribe(after_seq=run.last_seq - 2):
                    seqs.append(record.seq)
            return [run.last_seq, *seqs]

    last, *seqs = trio.run(main)
    assert seqs == [last - 1, last]


SCRIPT = """
import sys, trio
from aiosrun.runtime import Engine

async def main():
    async with Engine.open(sys.argv[1]) as engine:
        ids = []
        for n in range(int(sys.argv[2])):
            run = await engine.start("gated", {"who": "x"}, idempotency_key=f"k{n}")
            ids.append(run.id)
        for n in range(int(sys.argv[2])):
            await engine.emit("customer.signed_up", {"email": f"{n}@example.com"}, id=f"e{n}",
                              wait=True)
        print(" ".join(ids))

trio.run(main)
"""


def test_two_engines_in_two_processes_share_one_workspace(tmp_path: Path, store: str) -> None:
    root = make_workspace(tmp_path / "shop", store, gated=GATED, **{"on-signup": ON_SIGNUP})
    assert cli(root, "apply").returncode == 0
    script = tmp_path / "drive.py"
    script.write_text(textwrap.dedent(SCRIPT))
    count = 15
    processes = [subprocess.Popen([sys.executable, str(script), str(root), str(count)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    first, second = (out.split() for out, _ in outputs)
    assert first == second and len(set(first)) == count  # one run per key, both saw it
    records = log_records(root)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    started = [r for r in records if r["type"] == "RunStarted"]
    assert sorted(r["data"]["idempotency_key"] for r in started
                  if r["data"]["playbook"] == "gated") == sorted(f"k{n}" for n in range(count))
    emitted = [r for r in records if r["type"] == "EventEmitted"]
    assert sorted(r["data"]["id"] for r in emitted) == sorted(f"e{n}" for n in range(count))
    greeted = (root / "greeted.txt").read_text().splitlines()
    assert sorted(greeted) == sorted(f"{n}@example.com" for n in range(count))


EFFECTFUL = """\
apiVersion: aiosrun/v1
kind: Playbook
name: effectful
steps:
  - id: before
    uses: files.append
    with: {path: effects.txt, line: before}
  - id: nap
    uses: debug.sleep
    with: {seconds: 3}
  - id: after
    uses: files.append
    with: {path: effects.txt, line: after}
"""


def test_a_cancelled_engine_leaves_its_runs_resumable(tmp_path: Path, store: str) -> None:
    root = make_workspace(tmp_path / "shop", store, effectful=EFFECTFUL)

    async def leave_early() -> str:
        with trio.move_on_after(1.0):
            async with Engine.open(root) as engine:
                await engine.apply()
                run = await engine.start("effectful", wait=False)
                run_id = run.id
                await trio.sleep(30)
        return run_id

    run_id = trio.run(leave_early)
    assert (root / "effects.txt").read_text() == "before\n"
    left = json.loads(cli(root, "status", run_id, "--format", "json").stdout)
    assert left["status"] == "running"

    async def come_back() -> Any:
        async with Engine.open(root) as engine:
            return await engine.resume(run_id)

    resumed = trio.run(come_back)
    assert resumed.status == "succeeded"
    nap = next(s for s in resumed.steps if s.id == "nap")
    assert nap.status == "succeeded" and nap.attempts == 2  # slept again, not skipped
    assert (root / "effects.txt").read_text() == "before\nafter\n"
