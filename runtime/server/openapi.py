"""The API described as OpenAPI 3.1, served at ``/api/v1/openapi.json``.

Written out rather than derived from the handlers (the server is Starlette, not FastAPI: see
docs/decisions.md); a test checks that it names exactly the routes the app serves.
"""

from __future__ import annotations

from typing import Any

from aiosrun.runtime import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


CODES = (400, 401, 404, 409, 413, 422, 503)
ERRORS = {str(code): {"$ref": f"#/components/responses/E{code}"} for code in CODES}
RUN = _json(_ref("Run"), "The run as it stands.")
RUN_ID = {"name": "run", "in": "path", "required": True, "schema": {"type": "string"}}
SSE = {"description": "Server-Sent Events: `id:` is the record's seq, `event:` its type, "
       "`data:` the record as JSON.", "content": {"text/event-stream": {}}}
RESUME = [{"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"},
           "description": "Resume after this seq (sent by EventSource on reconnect)."},
          {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0},
           "description": "Start after this seq."}]


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": properties, "required": required}}}}


def _op(summary: str, responses: dict[str, Any], *, parameters: list[Any] | None = None,
        body: dict[str, Any] | None = None, errors: tuple[int, ...] = (400, 401),
        public: bool = False, store: bool = True) -> dict[str, Any]:
    """One operation; ``store``: it reads or records through the workspace's store, so it
    answers 503 while a PostgreSQL store is away."""
    codes = (*errors, 503) if store else errors
    op: dict[str, Any] = {"summary": summary, "responses": {
        **responses, **{str(c): ERRORS[str(c)] for c in codes}}}
    if parameters:
        op["parameters"] = parameters
    if body:
        op["requestBody"] = body
    if public:
        op["security"] = []
    return op


def paths() -> dict[str, Any]:
    return {
        "/healthz": {"get": _op("Liveness (no token needed).", {"200": _json(
            {"type": "object"}, "`{status: ok}`")}, errors=(), public=True, store=False)},
        "/api/v1/openapi.json": {"get": _op("This document.", {"200": _json(
            {"type": "object"}, "OpenAPI 3.1")}, errors=(401,), store=False)},
        "/api/v1/runs": {
            "post": _op(
                "Start a run; with `wait`, answer when it ends or waits, else 202.",
                {"200": RUN, "202": _json(_ref("Run"), "Still running (the wait passed, or "
                                          "no wait was asked).")},
                parameters=[
                    {"name": "wait", "in": "query", "schema": {"type": "string"},
                     "description": "How long to wait for the run to end or wait, a "
                     "duration up to 5m such as `10s`."},
                    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"},
                     "description": "The same key returns the same run."}],
                body=_body({"playbook": {"type": "string"}, "inputs": {"type": "object"}},
                           ["playbook"]),
                errors=(400, 401, 404, 413, 422)),
            "get": _op("List runs, oldest first.", {"200": _json(
                {"type": "array", "items": _ref("RunListing")}, "The runs.")},
                parameters=[{"name": "status", "in": "query", "schema": {"type": "string"}}]),
        },
        "/api/v1/runs/{run}": {"get": _op("One run.", {"200": RUN}, parameters=[RUN_ID],
                                          errors=(401, 404))},
        "/api/v1/runs/{run}/timeline": {"get": _op(
            "The run's history as a tree.", {"200": _json({"type": "object"}, "Timeline.")},
            parameters=[RUN_ID], errors=(401, 404))},
        "/api/v1/runs/{run}/events": {"get": _op(
            "The run's records, live; the stream ends when the run does.", {"200": SSE},
            parameters=[RUN_ID, *RESUME], errors=(400, 401, 404))},
        "/api/v1/runs/{run}/gates/{gate}": {"post": _op(
            "Decide a gate and continue the run.", {"200": RUN},
            parameters=[RUN_ID, {"name": "gate", "in": "path", "required": True,
                                 "schema": {"type": "string"}}],
            body=_body({"decision": {"enum": ["approve", "reject"]},
                        "comment": {"type": "string"}}, ["decision"]),
            errors=(400, 401, 404, 409, 413))},
        "/api/v1/runs/{run}/steps/{step}/resolve": {"post": _op(
            "Settle an escalated step: retry, skip (with outputs) or abort.", {"200": RUN},
            parameters=[RUN_ID, {"name": "step", "in": "path", "required": True,
                                 "schema": {"type": "string"}}],
            body=_body({"action": {"enum": ["retry", "skip", "abort"]}, "outputs": {}},
                       ["action"]),
            errors=(400, 401, 404, 409, 413))},
        "/api/v1/runs/{run}/cancel": {"post": _op(
            "Cancel a run and compensate it.", {"200": RUN}, parameters=[RUN_ID],
            errors=(401, 404, 409))},
        "/api/v1/inbox": {"get": _op("Open gates, escalations and waits.", {"200": _json(
            {"type": "array", "items": {"type": "object"}}, "The inbox.")}, errors=(401,))},
        "/api/v1/events": {"post": _op(
            "Record an event (once per id) and dispatch it.",
            {"202": _json(_ref("Recorded"), "Recorded and durable."),
             "200": _json(_ref("Recorded"), "The id was recorded before: nothing done.")},
            body=_body({"event": {"type": "string"}, "data": {}, "id": {"type": "string"}},
                       ["event"]), errors=(400, 401, 413))},
        "/api/v1/events/stream": {"get": _op(
            "Every record of the workspace, live (from now, or after Last-Event-ID).",
            {"200": SSE}, parameters=RESUME, errors=(400, 401))},
        "/hooks/{source}": {"post": _op(
            "An inbound webhook, verified by its signature (no token).",
            {"202": _json(_ref("Recorded"), "Verified, recorded and durable."),
             "200": _json(_ref("Recorded"), "A redelivery: acknowledged, nothing done.")},
            parameters=[{"name": "source", "in": "path", "required": True,
                         "schema": {"type": "string"}}],
            errors=(400, 401, 404, 413, 422), public=True)},
    }


def document(server_url: str) -> dict[str, Any]:
    error = _json(_ref("Error"), "`{error: {code, message, details}}`")
    return {
        "openapi": "3.1.0",
        "info": {"title": "aiosrun", "version": __version__,
                 "description": "Runs, gates, events and webhooks of one aiosrun workspace."},
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "paths": paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {**{f"E{code}": error for code in CODES if code != 503},
                          "E503": {**_json(_ref("Error"), "`unavailable`: the workspace's "
                                           "store (PostgreSQL) is away for now; try again."),
                                   "headers": {"Retry-After": {"schema": {
                                       "type": "integer"}, "description": "Seconds."}}}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "object", "required": ["code", "message", "details"],
                              "properties": {"code": {"type": "string"},
                                             "message": {"type": "string"},
                                             "details": {"type": "array"}}}}},
                "Run": {"type": "object", "required": [
                    "id", "playbook", "version", "status", "steps", "outputs", "cost_usd",
                    "waiting"], "properties": {
                    "id": {"type": "string"}, "playbook": {"type": "string"},
                    "version": {"type": "string"},
                    "status": {"enum": ["running", "waiting", "succeeded", "failed",
                                        "compensated", "cancelled", "needs_attention"]},
                    "steps": {"type": "array", "items": {"type": "object"}}, "outputs": {},
                    "error": {}, "cost_usd": {"type": "number"}, "waiting": {},
                    "parent": {}, "started_at": {}, "finished_at": {}}},
                "RunListing": {"type": "object", "properties": {
                    "id": {"type": "string"}, "playbook": {"type": "string"},
                    "status": {"type": "string"}, "started_at": {"type": "string"}}},
                "Recorded": {"type": "object", "properties": {
                    "event": {"type": "string"}, "id": {"type": "string"},
                    "seq": {"type": "integer"}, "duplicate": {"type": "boolean"}}},
            },
        },
    }
