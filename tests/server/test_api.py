"""The run API through a real server: each route, its status codes and its JSON errors."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from .conftest import TOKEN, Server


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code
    assert isinstance(body["message"], str) and isinstance(body["details"], list)
    return dict(body)


def test_a_waited_run_answers_with_its_end(api: httpx.Client) -> None:
    response = api.post("/api/v1/runs", params={"wait": "10s"},
                        json={"playbook": "three", "inputs": {"who": "ada"}})
    assert response.status_code == 200
    run = response.json()
    assert run["status"] == "succeeded" and run["outputs"] == {"who": "ada"}
    assert [s["id"] for s in run["steps"]] == ["a", "b", "c"]
    assert response.headers["location"] == f"/api/v1/runs/{run['id']}"
    assert api.get(f"/api/v1/runs/{run['id']}").json() == run


def test_a_wait_that_passes_answers_202_with_the_run_as_it_stands(api: httpx.Client) -> None:
    response = api.post("/api/v1/runs?wait=200ms", json={"playbook": "slow"})
    assert response.status_code == 202
    run = response.json()
    assert run["status"] == "running"
    deadline = time.monotonic() + 20
    while api.get(f"/api/v1/runs/{run['id']}").json()["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert api.get(f"/api/v1/runs/{run['id']}").json()["status"] == "succeeded"


def test_without_wait_the_start_answers_at_once(api: httpx.Client) -> None:
    response = api.post("/api/v1/runs", json={"playbook": "slow"})
    assert response.status_code == 202 and response.json()["status"] == "running"


def test_a_run_that_waits_at_a_gate_answers_200_waiting(api: httpx.Client) -> None:
    run = api.post("/api/v1/runs?wait=10s", json={"playbook": "gated"}).json()
    assert run["status"] == "waiting" and run["waiting"]["id"] == "review"
    inbox = api.get("/api/v1/inbox").json()
    assert any(item["run"] == run["id"] and item["id"] == "review" for item in inbox)


def test_the_same_idempotency_key_returns_the_same_run(api: httpx.Client) -> None:
    headers = {"Idempotency-Key": "order-77"}
    first = api.post("/api/v1/runs?wait=10s", headers=headers,
                     json={"playbook": "three", "inputs": {"who": "a"}}).json()
    again = api.post("/api/v1/runs?wait=10s", headers=headers,
                     json={"playbook": "three", "inputs": {"who": "a"}})
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    other = api.post("/api/v1/runs?wait=10s", headers={"Idempotency-Key": "order-78"},
                     json={"playbook": "three", "inputs": {"who": "a"}}).json()
    assert other["id"] != first["id"]
    listed = [r["id"] for r in api.get("/api/v1/runs").json()]
    assert listed.count(first["id"]) == 1


def test_bad_starts(api: httpx.Client) -> None:
    error_of(api.post("/api/v1/runs", content=b'{"playbook": '), 400, "malformed")
    error_of(api.post("/api/v1/runs", content=b"[1, 2]"), 400, "malformed")
    error_of(api.post("/api/v1/runs", json={"playbook": "../etc/passwd.yaml"}), 400,
             "malformed")
    error_of(api.post("/api/v1/runs", json={"playbook": "three", "inputs": [1]}), 400,
             "malformed")
    error_of(api.post("/api/v1/runs?wait=forever", json={"playbook": "three"}), 400,
             "malformed")
    error_of(api.post("/api/v1/runs", json={"playbook": "no-such"}), 404, "not_found")
    problem = error_of(api.post("/api/v1/runs", json={"playbook": "three",
                                                      "inputs": {"who": 5, "extra": 1}}),
                       422, "invalid_inputs")
    assert len(problem["details"]) == 2  # type: ignore[arg-type]
    assert any("who" in d for d in problem["details"])  # type: ignore[attr-defined]


def test_a_body_over_max_body_is_413(api: httpx.Client) -> None:
    big = json.dumps({"playbook": "three", "inputs": {"who": "x" * 5000}})
    error_of(api.post("/api/v1/runs", content=big), 413, "too_large")

    def chunks() -> object:  # no Content-Length: counted as it streams
        for _ in range(10):
            yield b" " * 1000

    error_of(api.post("/api/v1/runs", content=chunks()), 413, "too_large")  # type: ignore[arg-type]


def test_list_filter_and_unknown_runs(api: httpx.Client) -> None:
    run = api.post("/api/v1/runs?wait=10s", json={"playbook": "three",
                                                  "inputs": {"who": "b"}}).json()
    succeeded = api.get("/api/v1/runs", params={"status": "succeeded"}).json()
    assert run["id"] in [r["id"] for r in succeeded]
    assert all(r["status"] == "succeeded" for r in succeeded)
    assert set(succeeded[0]) == {"id", "playbook", "status", "started_at"}
    error_of(api.get("/api/v1/runs", params={"status": "nope"}), 400, "malformed")
    error_of(api.get("/api/v1/runs/nope"), 404, "not_found")
    error_of(api.get("/api/v1/runs/nope/timeline"), 404, "not_found")
    error_of(api.get("/api/v1/runs/nope/events"), 404, "not_found")
    timeline = api.get(f"/api/v1/runs/{run['id']}/timeline")
    assert timeline.status_code == 200 and timeline.json()["run"] == run["id"]
    assert "RunSucceeded" in timeline.text


def test_gates_approve_reject_unknown_and_decided(api: httpx.Client) -> None:
    run = api.post("/api/v1/runs?wait=10s", json={"playbook": "gated"}).json()
    gate = f"/api/v1/runs/{run['id']}/gates"
    error_of(api.post(f"{gate}/nope", json={"decision": "approve"}), 404, "not_found")
    error_of(api.post(f"{gate}/review", json={"decision": "maybe"}), 400, "malformed")
    done = api.post(f"{gate}/review", json={"decision": "approve", "comment": "ok"})
    assert done.status_code == 200 and done.json()["status"] == "succeeded"
    error_of(api.post(f"{gate}/review", json={"decision": "reject"}), 409, "conflict")
    other = api.post("/api/v1/runs?wait=10s", json={"playbook": "gated"}).json()
    rejected = api.post(f"/api/v1/runs/{other['id']}/gates/review",
                        json={"decision": "reject"}).json()
    assert rejected["status"] in ("failed", "compensated")


def test_resolve_and_cancel(api: httpx.Client) -> None:
    run = api.post("/api/v1/runs?wait=10s", json={"playbook": "flaky"}).json()
    assert run["status"] == "waiting" and run["waiting"]["kind"] == "escalation"
    base = f"/api/v1/runs/{run['id']}"
    error_of(api.post(f"{base}/steps/check/resolve", json={"action": "explode"}), 400,
             "bad_request")
    error_of(api.post(f"{base}/steps/nope/resolve", json={"action": "retry"}), 404,
             "not_found")
    skipped = api.post(f"{base}/steps/check/resolve",
                       json={"action": "skip", "outputs": {"value": "by hand"}})
    assert skipped.status_code == 200 and skipped.json()["status"] == "succeeded"
    error_of(api.post(f"{base}/steps/check/resolve", json={"action": "retry"}), 409,
             "conflict")
    waiting = api.post("/api/v1/runs?wait=10s", json={"playbook": "gated"}).json()
    cancelled = api.post(f"/api/v1/runs/{waiting['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    error_of(api.post(f"/api/v1/runs/{waiting['id']}/cancel"), 409, "conflict")


def test_events_are_recorded_once_per_id(api: httpx.Client, server: Server) -> None:
    first = api.post("/api/v1/events", json={"event": "lead.created", "id": "api-1",
                                             "data": {"email": "api@example.com"}})
    assert first.status_code == 202 and first.json()["duplicate"] is False
    again = api.post("/api/v1/events", json={"event": "lead.created", "id": "api-1",
                                             "data": {"email": "api@example.com"}})
    assert again.status_code == 200 and again.json() == {**first.json(), "duplicate": True}
    error_of(api.post("/api/v1/events", json={"event": "not an event"}), 400, "bad_request")
    error_of(api.post("/api/v1/events", json={"data": {}}), 400, "malformed")
    wait_for_lines(server, "leads-done.txt", ["api@example.com"])


def wait_for_lines(server: Server, name: str, lines: list[str]) -> None:
    path = server.root / name
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if path.exists() and all(line in path.read_text() for line in lines):
            break
        time.sleep(0.05)
    assert path.read_text().splitlines().count(lines[0]) == 1


def test_auth_guards_every_route_but_hooks_and_healthz(server: Server) -> None:
    with server.client(token=None) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        for method, path in [("GET", "/api/v1/runs"), ("POST", "/api/v1/runs"),
                             ("GET", "/api/v1/inbox"), ("GET", "/api/v1/openapi.json"),
                             ("GET", "/api/v1/events/stream"), ("GET", "/nothing/here"),
                             ("POST", "/api/v1/events")]:
            response = anonymous.request(method, path, json={"playbook": "three"})
            error_of(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
        # a hook is reached without a token (and refused for its missing signature)
        error_of(anonymous.post("/hooks/forms", json={}), 401, "bad_signature")
    with server.client(token="tok-wrong") as wrong:
        error_of(wrong.get("/api/v1/runs"), 401, "unauthorized")
    with server.client() as good:
        error_of(good.get("/nothing/here"), 404, "not_found")
        error_of(good.delete("/api/v1/runs"), 405, "method_not_allowed")


def test_no_response_holds_a_secret(api: httpx.Client, server: Server) -> None:
    answers = [api.get("/api/v1/openapi.json").text, api.get("/api/v1/runs").text,
               api.post("/api/v1/runs", json={"playbook": "three",
                                              "inputs": {"who": TOKEN}}).text]
    for text in answers:
        assert TOKEN not in text
    assert TOKEN not in server.log.read_text()


def test_the_openapi_document_names_every_route(api: httpx.Client) -> None:
    from aiosrun.runtime.server.app import Api, routes

    doc = api.get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    served = {(r.path, m.lower()) for r in routes(Api.__new__(Api), str)  # type: ignore[attr-defined]
              for m in r.methods - {"HEAD"}}  # type: ignore[attr-defined]
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert described == served
    # every route that reads or records through the store says it may answer 503
    unavailable = {(path, method) for path, ops in doc["paths"].items()
                   for method, op in ops.items() if "503" in op["responses"]}
    assert unavailable == served - {("/healthz", "get"), ("/api/v1/openapi.json", "get")}
    assert "Retry-After" in doc["components"]["responses"]["E503"]["headers"]


def test_a_slow_client_is_cut_off_and_holds_nothing(server: Server, api: httpx.Client) -> None:
    """read_timeout is 2s here: a client that sends half a request head, or a body that
    never ends, is dropped; other clients are served meanwhile."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as head_only, \
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow_body:
        head_only.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        slow_body.sendall(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                          + TOKEN.encode() + b"\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        assert api.get("/healthz").status_code == 200
        assert time.monotonic() - started < 1.5  # not held behind the slow ones (2s)
        assert head_only.recv(100) == b""  # closed by the server, no answer
        answer = b""
        while chunk := slow_body.recv(1000):
            answer += chunk
        assert b" 408 " in answer.split(b"\r\n")[0] and b'"timeout"' in answer
        assert time.monotonic() - started < 8


@pytest.mark.parametrize("path", ["/api/v1/runs/x/gates/y", "/api/v1/events"])
def test_a_decision_body_must_be_json(api: httpx.Client, path: str) -> None:
    error_of(api.post(path, content=b"not json"), 400, "malformed")
