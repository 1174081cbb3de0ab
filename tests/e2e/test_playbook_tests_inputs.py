"""`aiosrun test` with what a case can give beyond mocks: a trigger's event payload, model
answers from a cassette, a virtual clock that passes a wait at once, the events a run emits,
and SMTP refused (tests never reach the network)."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Runner
from .test_cli_runs import workspace

TRIGGERED = """\
apiVersion: aiosrun/v1
kind: Playbook
name: lead
on: {event: lead.created}
inputs:
  email: {type: string}
steps:
  - id: pause
    wait: {duration: 3d}
  - id: summary
    llm:
      prompt: "Summarize the lead ${{ inputs.email }} from ${{ event.source }}"
      output: {type: object, required: [score], properties: {score: {type: number}}}
  - id: tell
    emit:
      event: lead.scored
      data: {email: "${{ inputs.email }}", score: "${{ steps.summary.outputs.score }}"}
  - id: mail
    uses: email.send
    with:
      to: ${{ inputs.email }}
      subject: Hello
      body: Score ${{ steps.summary.outputs.score }}
outputs:
  score: ${{ steps.summary.outputs.score }}
"""

CASES = """\
apiVersion: aiosrun/v1
kind: Test
playbook: lead
cases:
  - name: an event starts it and the wait passes at once
    event: {email: ada@example.com, source: form}
    now: 2026-12-01T09:00:00Z
    models:
      summary: {cassette: answers.jsonl}
    mocks:
      email.send: {outputs: {message_id: m-1}}
    expect:
      status: succeeded
      outputs: {score: 0.75}
      steps: {pause: {status: succeeded}}
      events: [lead.scored]
      calls: {email.send: 1}
  - name: an unmocked send over SMTP is refused
    event: {email: bob@example.com, source: form}
    models:
      summary: {output: {score: 0.5}}
    expect:
      status: compensated
      steps: {mail: {status: failed}}
"""


def test_event_cassette_clock_events_and_smtp(aiosrun: Runner, tmp_path: Path) -> None:
    workspace(tmp_path, lead=TRIGGERED)
    (tmp_path / "aios.yaml").write_text(
        "apiVersion: aiosrun/v1\nkind: Workspace\n"
        "adapters:\n  email:\n    smtp: {host: 127.0.0.1, port: 2525}\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "lead.yaml").write_text(CASES)
    (tmp_path / "tests" / "answers.jsonl").write_text(json.dumps(
        {"match": {"step": "lead/summary"}, "output": {"score": 0.75}}) + "\n")
    done = aiosrun("test", "tests/lead.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "2 passed, 0 failed"
    wrong = aiosrun("test", "tests/lead.yaml", "-k", "refused")
    assert wrong.returncode == 0
    (tmp_path / "tests" / "lead.yaml").write_text(CASES.replace("events: [lead.scored]",
                                                                "events: [lead.lost]"))
    failed = aiosrun("test", "tests/lead.yaml", "-k", "wait passes")
    assert failed.returncode == 1
    assert 'lead.yaml:16:16: expected "lead.lost", got "lead.scored" (events.0)' in failed.stdout
