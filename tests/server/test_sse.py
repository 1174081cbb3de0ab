"""Live events over SSE through a real server: ``id:`` is the seq, ``Last-Event-ID``
resumes, a run's stream ends with the run, the workspace stream sees every run."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx

from .conftest import Server


def messages(response: httpx.Response) -> Iterator[dict[str, str]]:
    """The SSE messages of a streamed response (comment lines skipped)."""
    current: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if current:
                yield current
            current = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(": ")
            current[field] = value


def test_a_runs_stream_follows_it_live_and_ends_with_it(server: Server,
                                                        api: httpx.Client) -> None:
    run = api.post("/api/v1/runs?wait=10s", json={"playbook": "gated"}).json()
    seen: list[dict[str, str]] = []
    with api.stream("GET", f"/api/v1/runs/{run['id']}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = messages(response)
        for message in stream:
            seen.append(message)
            if message["event"] == "GateOpened":
                break
        approver = threading.Thread(target=lambda: api.post(
            f"/api/v1/runs/{run['id']}/gates/review", json={"decision": "approve"}))
        approver.start()
        seen.extend(stream)  # to the end: the server closes the stream after RunSucceeded
        approver.join(timeout=20)
    types = [m["event"] for m in seen]
    assert types[0] == "RunStarted" and types[-1] == "RunSucceeded"
    assert "GateDecided" in types
    seqs = [int(m["id"]) for m in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for message in seen:
        record = json.loads(message["data"])
        assert record["seq"] == int(message["id"]) and record["run"] == run["id"]
    # a reconnect with Last-Event-ID gets exactly what came after it
    middle = seen[len(seen) // 2]
    with api.stream("GET", f"/api/v1/runs/{run['id']}/events",
                    headers={"Last-Event-ID": middle["id"]}) as response:
        rest = list(messages(response))
    assert [m["id"] for m in rest] == [m["id"] for m in seen[len(seen) // 2 + 1:]]


def test_the_workspace_stream_sees_new_records_only(server: Server, api: httpx.Client) -> None:
    before = api.post("/api/v1/runs?wait=10s", json={"playbook": "three",
                                                     "inputs": {"who": "old"}}).json()
    with api.stream("GET", "/api/v1/events/stream") as response:
        assert response.status_code == 200
        after = api.post("/api/v1/runs?wait=10s", json={"playbook": "three",
                                                        "inputs": {"who": "new"}}).json()
        runs = set()
        for message in messages(response):
            record = json.loads(message["data"])
            runs.add(record.get("run"))
            if message["event"] == "RunSucceeded" and record["run"] == after["id"]:
                break
    assert after["id"] in runs and before["id"] not in runs


def test_a_stream_refuses_a_bad_resume_point(api: httpx.Client) -> None:
    response = api.get("/api/v1/events/stream", headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed"
