"""The interpreter on a real workspace and log, with trio's virtual clock."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from .conftest import Harness

H = Callable[[], Harness]


def test_sequential_steps_outputs_and_inputs(harness: H) -> None:
    h = harness()
    state = h.run("""
inputs:
  who: {type: string}
  n: {type: integer, default: 2}
steps:
  - id: greet
    uses: debug.echo
    with: {value: "hi ${{ inputs.who }}"}
  - id: shaped
    set: {twice: "${{ format('{0}{0}', steps.greet.outputs.value) }}"}
    outputs: {len: "${{ result.twice }}"}
outputs:
  greeting: ${{ steps.greet.outputs.value }}
  n: ${{ inputs.n }}
  shaped: ${{ steps.shaped.outputs }}
""", {"who": "Ada"})
    assert state.status == "succeeded"
    assert state.outputs == {"greeting": "hi Ada", "n": 2, "shaped": {"len": "hi Adahi Ada"}}
    assert [state.steps[p].status for p in state.order] == ["succeeded", "succeeded"]


def test_retry_waits_exponentially_and_only_for_retryable_errors(harness: H) -> None:
    h = harness()
    state = h.run("""
steps:
  - id: flaky
    uses: debug.fail
    with: {times: 3, error: transient, value: ok}
    retry: {max_attempts: 4, initial_delay: 100ms, backoff: 2, jitter: none}
  - id: broken
    uses: debug.fail
    with: {times: 1, error: permanent}
    retry: {max_attempts: 4, initial_delay: 100ms}
""")
    flaky = state.steps["flaky"]
    assert flaky.status == "succeeded" and flaky.attempts == 4
    assert [a["retry_in"] for a in flaky.history] == [0.1, 0.2, 0.4]
    starts = [t for kind, t in h.times if kind == "StepStarted:flaky"]
    assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [0.1, 0.2, 0.4]
    broken = state.steps["broken"]
    assert broken.status == "failed" and broken.attempts == 1  # permanent: no retry
    assert state.status == "compensated"


def test_max_delay_and_jitter_bound_the_wait(harness: H) -> None:
    h = harness()
    state = h.run("""
steps:
  - id: flaky
    uses: debug.fail
    with: {times: 5, error: rate_limit}
    retry: {max_attempts: 6, initial_delay: 1s, backoff: 10, max_delay: 3s, jitter: full}
""")
    delays = [a["retry_in"] for a in state.steps["flaky"].history]
    assert len(delays) == 5 and all(0 <= d <= 3 for d in delays)
    assert len(set(delays)) > 1


def test_timeout_is_its_own_error_class(harness: H) -> None:
    h = harness()
    state = h.run("""
steps:
  - id: slow
    uses: debug.sleep
    with: {seconds: 60}
    timeout: 2s
    retry: {max_attempts: 2, initial_delay: 1s, jitter: none, retry_on: [timeout]}
""")
    slow = state.steps["slow"]
    assert slow.status == "failed" and slow.attempts == 2
    assert slow.error == {"class": "timeout", "message": "attempt 2 took longer than 2000 ms"}
    started = [t for kind, t in h.times if kind == "StepStarted:slow"]
    assert started[1] - started[0] == 3.0  # 2 s timeout + 1 s delay, in virtual time


def test_status_functions_and_continue_on_error(harness: H) -> None:
    h = harness()
    state = h.run("""
steps:
  - id: tolerated
    uses: debug.fail
    with: {times: 1, error: permanent}
    continue_on_error: true
  - id: after_tolerated
    set: {ran: "${{ steps.tolerated.outcome }}/${{ steps.tolerated.conclusion }}"}
  - id: breaks
    uses: debug.fail
    with: {times: 1, error: permanent}
  - id: skipped_by_default
    set: {ran: true}
  - id: cleanup
    if: failure()
    set: {ran: true}
  - id: final
    if: always()
    set: {ran: true}
""")
    status = {p: state.steps[p].status for p in state.order}
    assert status == {"tolerated": "failed", "after_tolerated": "succeeded",
                      "breaks": "failed", "skipped_by_default": "skipped",
                      "cleanup": "succeeded", "final": "succeeded"}
    assert state.steps["after_tolerated"].outputs == {"ran": "failure/success"}
    assert state.error == {"class": "permanent", "step": "breaks",
                           "message": "debug.fail: attempt 1 of 1 failing on purpose"}


def test_parallel_and_foreach(harness: H) -> None:
    h = harness()
    state = h.run("""
steps:
  - id: fan
    parallel:
      max_concurrency: 2
      steps:
        - {id: a, uses: debug.sleep, with: {seconds: 1}}
        - {id: b, uses: debug.sleep, with: {seconds: 1}}
        - {id: c, uses: debug.sleep, with: {seconds: 1}}
  - id: each
    foreach:
      items: [3, 1, 2]
      as: n
      max_concurrency: 3
      steps:
        - id: wait
          uses: debug.sleep
          with: {seconds: "${{ n }}"}
        - id: label
          set: {text: "${{ index }}:${{ n }}:${{ steps.wait.outputs.slept }}"}
outputs:
  labels: ${{ steps.each.outputs.*.label.text }}
""")
    assert state.status == "succeeded"
    ends = dict(h.times)
    assert ends["StepSucceeded:fan"] == 2.0  # three 1 s steps, two at a time
    assert ends["StepSucceeded:each"] - ends["StepSucceeded:fan"] == 3.0  # concurrent items
    assert state.outputs == {"labels": ["0:3:3", "1:1:1", "2:2:2"]}


def test_fail_fast_cancels_parallel_siblings(harness: H) -> None:
    h = harness()
    state = h.run("""
steps:
  - id: fan
    parallel:
      steps:
        - {id: long, uses: debug.sleep, with: {seconds: 100}}
        - {id: bad, uses: debug.fail, with: {times: 1, error: permanent}}
""")
    assert state.steps["fan/long"].status == "cancelled"
    assert state.steps["fan/bad"].status == "failed"
    assert state.steps["fan"].status == "failed"
    assert dict(h.times)["StepFailed:fan"] < 100


def test_compensation_runs_in_reverse_and_skips_what_did_not_complete(harness: H) -> None:
    h = harness()
    state = h.run("""
steps:
  - id: first
    uses: files.write
    with: {path: one.txt, content: "1"}
    compensate: {uses: files.delete, with: {path: one.txt}}
  - id: never
    if: false
    uses: files.write
    with: {path: never.txt, content: "x"}
    compensate: {uses: files.append, with: {path: undo.log, line: never}}
  - id: second
    uses: files.write
    with: {path: two.txt, content: "2"}
    compensate:
      uses: files.append
      with: {path: undo.log, line: "undo ${{ steps.second.outputs.path }}"}
  - id: boom
    uses: debug.fail
    with: {times: 1, error: permanent}
""")
    assert state.status == "compensated"
    assert list(state.compensations) == ["second", "first"]
    assert h.read("undo.log") == "undo two.txt\n"
    assert not (h.root / "one.txt").exists()


def test_failed_compensation_needs_attention(harness: H) -> None:
    h = harness()
    state = h.run("""
steps:
  - id: made
    uses: debug.echo
    compensate:
      uses: debug.fail
      with: {times: 5, error: transient}
      retry: {max_attempts: 2, initial_delay: 10ms}
  - id: boom
    uses: debug.fail
    with: {times: 1, error: permanent}
""")
    assert state.status == "needs_attention"
    assert state.compensations == {"made": "failed"}
    assert "made" in state.error["attention"]


def test_halt_leaves_effects_in_place(harness: H) -> None:
    h = harness()
    state = h.run("""
on_failure: halt
steps:
  - id: made
    uses: files.write
    with: {path: kept.txt, content: "k"}
    compensate: {uses: files.delete, with: {path: kept.txt}}
  - id: boom
    uses: debug.fail
    with: {times: 1, error: permanent}
""")
    assert state.status == "failed"
    assert h.read("kept.txt") == "k"


def test_call_runs_a_linked_child(harness: H) -> None:
    h = harness()
    h.add("inputs:\n  x: {type: integer}\nsteps:\n  - id: double\n    set: {v: "
          "\"${{ format('{0}{0}', inputs.x) }}\"}\noutputs:\n  v: ${{ steps.double.outputs.v }}\n",
          name="child")
    state = h.run("steps:\n  - id: sub\n    call: {playbook: child, with: {x: 4}}\n"
                  "outputs:\n  got: ${{ steps.sub.outputs.v }}\n")
    assert state.outputs == {"got": "44"}
    child_id = f"{state.id}.sub"
    child = h.ws.run_state(child_id)
    assert child.parent == state.id and child.parent_step == "sub"
    assert child.status == "succeeded"


def test_bad_inputs_are_refused_before_the_run(harness: H) -> None:
    from aiosrun.adapters.base import PermanentError
    from aiosrun.runtime.coordinator.runs import start_or_load

    h = harness()
    h.add("inputs:\n  n: {type: integer}\nsteps:\n  - id: a\n    uses: debug.echo\n")
    try:
        start_or_load(h.ws, "t", {"n": "three", "extra": 1})
    except PermanentError as exc:
        assert "unknown input 'extra'" in str(exc) and "'three' is not of type" in str(exc)
    else:
        raise AssertionError("bad inputs were accepted")


def test_files_stay_inside_the_workspace(harness: H) -> None:
    h = harness()
    state = h.run("""
steps:
  - id: escape
    uses: files.write
    with: {path: ../outside.txt, content: x}
  - id: state
    if: always()
    uses: files.append
    with: {path: .aios/log/evil.jsonl, line: x}
""")
    assert "outside the workspace" in state.steps["escape"].error["message"]
    assert "aiosrun's own state" in state.steps["state"].error["message"]
    assert not (h.root.parent / "outside.txt").exists()


def test_an_escalation_inside_foreach_suspends_the_foreach(harness: Callable[[], Any]) -> None:
    """The foreach is not done while an item waits for the operator: resuming keeps waiting,
    and only the operator's answer lets the run go on."""
    from aiosrun.runtime.log.eventlog import NewEvent

    h = harness()
    run = h.run("""
steps:
  - id: each
    foreach:
      items: [1, 2]
      steps:
        - id: check
          uses: debug.fail
          with: {times: "${{ item == 2 && 5 || 0 }}", error: permanent, value: ok}
          escalate: {after_attempts: 1}
  - id: after
    uses: debug.echo
    with: {value: done}
""")
    assert run.status == "waiting"
    assert run.steps["each"].status == "running"
    assert "after" not in run.steps
    playbook = h.ws.playbook(run.digest)
    again = h.execute(playbook, h.ws.run_state(run.id))
    assert again.status == "waiting" and "after" not in again.steps
    h.ws.log.append(NewEvent("EscalationResolved", {"path": "each[1]/check", "action": "skip",
                                                    "outputs": {"value": "skipped"}},
                             run=run.id))
    final = h.execute(playbook, h.ws.run_state(run.id))
    assert final.status == "succeeded"
    assert final.steps["each"].outputs == [{"check": {"value": "ok"}},
                                           {"check": {"value": "skipped"}}]


def test_a_call_compensation_runs_the_undo_playbook(harness: Callable[[], Any]) -> None:
    h = harness()
    h.add("""
inputs:
  booking: {type: string}
steps:
  - id: cancel
    uses: files.append
    with: {path: out/undo.txt, line: "cancelled ${{ inputs.booking }}"}
""", name="undo-booking")
    run = h.run("""
steps:
  - id: book
    uses: files.append
    with: {path: out/undo.txt, line: booked}
    compensate:
      call: {playbook: undo-booking, with: {booking: "${{ steps.book.outputs.path }}"}}
  - id: boom
    uses: debug.fail
    with: {times: 1, error: permanent}
""")
    assert run.status == "compensated"
    assert h.read("out/undo.txt").splitlines() == ["booked", "cancelled out/undo.txt"]
    assert run.compensations == {"book": "succeeded"}
    child = h.ws.run_state(f"{run.id}.book-undo")
    assert child.status == "succeeded" and child.parent == run.id
