"""The paths an operator meets when nobody watches: conditions after a failure, policy limits,
compensation of child runs, waits' outputs, values that explode only at run time."""

from __future__ import annotations

from collections.abc import Callable

from .conftest import Harness

H = Callable[[], Harness]


def test_an_if_without_a_status_function_is_skipped_after_a_failure(harness: H) -> None:
    h = harness()
    state = h.run("""
inputs:
  notify: {type: boolean, default: true}
steps:
  - id: breaks
    uses: debug.fail
    with: {times: 1, error: permanent}
  - id: guarded
    if: ${{ inputs.notify }}
    uses: files.append
    with: {path: notified.txt, line: posted}
  - id: bare
    if: inputs.notify
    set: {ran: true}
  - id: text
    if: "${{ inputs.notify }} and more"
    set: {ran: true}
  - id: on_failure
    if: ${{ failure() && inputs.notify }}
    set: {ran: true}
  - id: final
    if: always()
    set: {ran: true}
""")
    status = {p: state.steps[p].status for p in state.order}
    assert status == {"breaks": "failed", "guarded": "skipped", "bare": "skipped",
                      "text": "skipped", "on_failure": "succeeded", "final": "succeeded"}
    assert not (h.root / "notified.txt").exists()


def test_events_emit_takes_dotted_event_names(harness: H) -> None:
    from aiosrun.dsl.loader import load_text
    from aiosrun.dsl.validate import validate_document

    body = """
steps:
  - id: paid
    uses: events.emit
    with: {event: invoice.paid, data: {amount: 49}}
"""
    h = harness()
    source = "apiVersion: aiosrun/v1\nkind: Playbook\nname: t\n" + body
    validate_document(load_text(source, "t.yaml"), h.ws.registry.catalog())  # no error
    state = h.run(body)
    assert state.status == "succeeded", state.error
    pending = list(h.ws.workspace_state().pending_events.values())
    assert [(e["event"], e["data"]) for e in pending] == [("invoice.paid", {"amount": 49})]


def test_a_failed_parent_compensates_its_call_children_in_reverse_order(harness: H) -> None:
    h = harness()
    h.add("""
steps:
  - id: reserve
    uses: files.append
    with: {path: out/log.txt, line: child reserved}
    compensate: {uses: files.append, with: {path: out/log.txt, line: child unreserved}}
  - id: charge
    uses: files.append
    with: {path: out/log.txt, line: child charged}
    compensate: {uses: files.append, with: {path: out/log.txt, line: child refunded}}
""", name="child")
    run = h.run("""
steps:
  - id: book
    uses: files.append
    with: {path: out/log.txt, line: parent booked}
    compensate: {uses: files.append, with: {path: out/log.txt, line: parent unbooked}}
  - id: sub
    call: {playbook: child}
  - id: boom
    uses: debug.fail
    with: {times: 1, error: permanent}
""")
    assert run.status == "compensated"
    assert h.read("out/log.txt").splitlines() == [
        "parent booked", "child reserved", "child charged",
        "child refunded", "child unreserved", "parent unbooked"]
    child = h.ws.run_state(f"{run.id}.sub")
    assert child.status == "compensated"
    assert child.compensations == {"charge": "succeeded", "reserve": "succeeded"}
    assert run.compensations == {"sub": "succeeded", "book": "succeeded"}
    assert h.ws.workspace_state().runs[child.id].status == "compensated"


def test_values_that_explode_at_run_time_fail_their_step_cleanly(harness: H) -> None:
    h = harness()
    for body, message in [
        ("uses: debug.sleep\n    with: {seconds: .nan}",
         "debug.sleep: seconds must be a number from 0 to 1e9, got nan"),
        ("wait: {until: '9999-12-31T23:00:00-05:00'}",
         "wait until: '9999-12-31T23:00:00-05:00' is not an RFC 3339 time between the years "
         "1 and 9999"),
        ("wait: {until: '0001-01-01T00:00:00Z'}",
         "wait until: '0001-01-01T00:00:00Z' is not an RFC 3339 time between the years "
         "1 and 9999"),
        ("uses: email.send\n    with: {to: a@example.com, subject: \"hi\\r\\nBcc: x@evil\", "
         "body: b}",
         "email.send: 'subject' must be one line (it holds a line break, which would let it "
         "add mail headers)"),
    ]:
        state = h.run(f"steps:\n  - id: s\n    {body}\n")
        assert state.status == "compensated", body
        assert state.steps["s"].error == {"class": "permanent", "message": message}
    assert not (h.root / ".aios" / "outbox").exists()


def test_a_smtp_port_made_of_a_secret_is_a_clean_error() -> None:
    import email.message

    import pytest
    from aiosrun.adapters.base import PermanentError
    from aiosrun.adapters.email import _deliver

    with pytest.raises(PermanentError) as caught:
        _deliver({"host": "127.0.0.1", "port": "${{ secrets.PORT }}"}, {"PORT": "s3cret"},
                 email.message.EmailMessage())
    assert "s3cret" not in str(caught.value) and "port" in str(caught.value)


def test_an_exception_outside_any_step_fails_that_run_alone(harness: H) -> None:
    import trio
    from aiosrun.runtime.coordinator.execution import execute_run
    from aiosrun.runtime.log.eventlog import NewEvent

    h = harness()
    h.ws.log.append(NewEvent("RunStarted", {"playbook": "gone", "digest": "0" * 64,
                                            "inputs": {}}, run="broken"))
    state = trio.run(execute_run, h.ws, None, h.ws.run_state("broken"))
    assert state is not None and state.status == "failed" and state.finished
    assert state.error["class"] == "internal" and "KeyError" in state.error["message"]


def test_policy_limits_and_the_run_timeout_fail_the_run_naming_the_limit(harness: H) -> None:
    h = harness()
    (h.root / "aios.yaml").write_text(
        "apiVersion: aiosrun/v1\nkind: Workspace\n"
        "policy: {limits: {max_steps_per_run: 3, max_foreach_items: 2}}\n")
    from aiosrun.runtime.workspace import Workspace

    h.ws.close()
    h.ws = Workspace(h.root)
    many = h.run("steps:\n" + "".join(f"  - id: s{i}\n    set: {{n: {i}}}\n" for i in range(5)))
    assert many.status == "compensated"
    assert [many.steps[p].status for p in many.order] == ["succeeded"] * 3 + ["failed", "skipped"]
    assert many.error["class"] == "limit"
    assert "policy.limits.max_steps_per_run" in many.error["message"]
    items = h.run("""
steps:
  - id: each
    foreach: {items: "${{ fromJSON('[1, 2, 3]') }}", steps: [{id: one, set: {v: 1}}]}
""", name="items")
    assert items.status == "compensated" and items.error["class"] == "limit"
    assert items.error["message"] == ("foreach has 3 items, more than "
                                      "policy.limits.max_foreach_items (2)")
    slow = h.run("""
policy: {timeout: 5s}
steps:
  - id: first
    uses: debug.sleep
    with: {seconds: 3}
  - id: second
    uses: debug.sleep
    with: {seconds: 3}
  - id: third
    set: {never: true}
""", name="slow")
    assert slow.status == "compensated"
    assert slow.error == {"class": "timeout",
                          "message": "the run took longer than its policy.timeout (5s)"}
    assert [slow.steps[p].status for p in slow.order] == ["succeeded", "cancelled"]
