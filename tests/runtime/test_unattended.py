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
