"""The routes of the HTTP API (DESIGN section 10): parse the request, call the Engine, render.

Every answer is JSON (SSE streams aside); every refusal is ``{error: {code, message,
details}}`` with the status the design lists, and an unexpected failure is a 500 with no
traceback (the traceback goes to the server's log, secrets masked). Calls that change
state are shielded from the client going away: a decision once received is carried out.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import trio
from aiosrun.dsl.durations import parse_duration
from aiosrun.dsl.errors import PlaybookError
from aiosrun.runtime.errors import EngineError, Unavailable
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from . import sse, webhooks
from .auth import BearerAuth
from .bodies import parse_object, read_body
from .config import ServerConfig
from .openapi import document
from .responses import JSON, ApiError, engine_error, error_body, error_response

if TYPE_CHECKING:
    from aiosrun.runtime.engine import Engine

Handler = Callable[[Request], Awaitable[Response]]
PLAYBOOK_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")
STATUSES = ("running", "waiting", "succeeded", "failed", "compensated", "cancelled",
            "needs_attention")
MAX_WAIT_MS = 5 * 60 * 1000
MAX_KEY = 200


class Api:
    """The handlers, bound to one Engine and the server's settings."""

    def __init__(self, engine: Engine, config: ServerConfig, stopping: trio.Event) -> None:
        self.engine = engine
        self.config = config
        self.stopping = stopping

    # ---- helpers --------------------------------------------------------------------------

    async def body(self, request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
        raw = await read_body(request, self.config.max_body, self.config.read_timeout)
        return parse_object(raw, empty_ok=empty_ok)

    def run_url(self, run_id: str) -> str:
        return f"/api/v1/runs/{run_id}"

    # ---- runs -----------------------------------------------------------------------------

    async def start_run(self, request: Request) -> Response:
        wait = wait_seconds(request.query_params.get("wait"))
        body = await self.body(request)
        playbook = body.get("playbook")
        if not isinstance(playbook, str) or not PLAYBOOK_NAME.fullmatch(playbook):
            raise ApiError(400, "malformed", "playbook must be the name of an applied "
                           "playbook (lower-case letters, digits and '-')")
        inputs = body.get("inputs", {})
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, dict):
            raise ApiError(400, "malformed", "inputs must be a JSON object")
        key = request.headers.get("idempotency-key")
        if key is not None and not 0 < len(key) <= MAX_KEY:
            raise ApiError(400, "malformed", f"Idempotency-Key must be 1 to {MAX_KEY} "
                           "characters")
        with trio.CancelScope(shield=True):
            run = await self.engine.start(playbook, inputs, idempotency_key=key, wait=False)
        if wait:
            with trio.move_on_after(wait):
                run = await self.engine.wait(run.id)
            if run.status == "running":
                run = await self.engine.get(run.id)
        status = 202 if run.status == "running" else 200
        return JSON(run.to_json(), status, headers={"Location": self.run_url(run.id)})

    async def list_runs(self, request: Request) -> Response:
        status = request.query_params.get("status")
        if status is not None and status not in STATUSES:
            raise ApiError(400, "malformed", f"status must be one of {', '.join(STATUSES)}")
        return JSON([r.to_json() for r in await self.engine.runs(status)])

    async def get_run(self, request: Request) -> Response:
        return JSON((await self.engine.get(request.path_params["run"])).to_json())

    async def timeline(self, request: Request) -> Response:
        return JSON((await self.engine.timeline(request.path_params["run"])).to_json())

    async def decide(self, request: Request) -> Response:
        run_id, gate = request.path_params["run"], request.path_params["gate"]
        body = await self.body(request)
        decision, comment = body.get("decision"), body.get("comment")
        if decision not in ("approve", "reject"):
            raise ApiError(400, "malformed", "decision must be approve or reject")
        if comment is not None and not isinstance(comment, str):
            raise ApiError(400, "malformed", "comment must be a string")
        decide = self.engine.approve if decision == "approve" else self.engine.reject
        with trio.CancelScope(shield=True):
            run = await decide(run_id, gate, comment=comment)
        return JSON(run.to_json())

    async def resolve(self, request: Request) -> Response:
        run_id, step = request.path_params["run"], request.path_params["step"]
        body = await self.body(request)
        action = body.get("action")
        if not isinstance(action, str):
            raise ApiError(400, "malformed", "action must be retry, skip or abort")
        with trio.CancelScope(shield=True):
            run = await self.engine.resolve(run_id, step, action, body.get("outputs"))
        return JSON(run.to_json())

    async def cancel(self, request: Request) -> Response:
        with trio.CancelScope(shield=True):
            run = await self.engine.cancel(request.path_params["run"])
        return JSON(run.to_json())

    async def run_events(self, request: Request) -> Response:
        run = await self.engine.get(request.path_params["run"])  # 404 before the stream
        after = self.resume_point(request, 0)
        return Streamed(sse.EventStream(self.engine.subscribe(run.id, after), self.stopping,
                                        until_run_ends=True))

    async def workspace_events(self, request: Request) -> Response:
        after = self.resume_point(request, self.engine.last_seq)
        return Streamed(sse.EventStream(self.engine.subscribe(None, after), self.stopping,
                                        until_run_ends=False))

    def resume_point(self, request: Request, default: int) -> int:
        after = sse.resume_point(request.headers.get("last-event-id"),
                                 request.query_params.get("after"), default)
        if after < 0:
            raise ApiError(400, "malformed", "Last-Event-ID and ?after= take a seq (a "
                           "whole number)")
        return after

    # ---- the operator and events ------------------------------------------------------------

    async def inbox(self, request: Request) -> Response:
        return JSON([item.to_json() for item in await self.engine.inbox()])

    async def emit(self, request: Request) -> Response:
        body = await self.body(request)
        event, event_id = body.get("event"), body.get("id")
        if not isinstance(event, str):
            raise ApiError(400, "malformed", "event must be an event name such as "
                           "customer.signed_up")
        if event_id is not None and (not isinstance(event_id, str)
                                     or not 0 < len(event_id) <= MAX_KEY):
            raise ApiError(400, "malformed", f"id must be a string of 1 to {MAX_KEY} "
                           "characters")
        with trio.CancelScope(shield=True):
            result = await self.engine.emit(event, body.get("data"), id=event_id,
                                            source={"api": True})
            await self.engine.sync()
        return JSON({"event": event, "seq": result.seq, "duplicate": result.duplicate},
                    200 if result.duplicate else 202)

    async def hook(self, request: Request) -> Response:
        source = request.path_params["source"]
        hook = self.config.webhooks.get(source)
        if hook is None:
            raise ApiError(404, "not_found", f"no webhook source '{source}' (server.webhooks "
                           "in aios.yaml)")
        raw = await read_body(request, self.config.max_body, self.config.read_timeout)
        headers = {k.lower(): v for k, v in request.headers.items()}
        webhooks.verify(hook, raw, headers)
        from aiosrun.dsl.names import EVENT_NAME

        found = webhooks.delivery(hook, raw, headers, EVENT_NAME)
        with trio.CancelScope(shield=True):
            result = await self.engine.emit(found.event, found.data, id=found.id,
                                            source={"webhook": source})
            await self.engine.sync()  # the 2xx promises the event survives a crash
        return JSON({"event": found.event, "id": found.id, "seq": result.seq,
                     "duplicate": result.duplicate}, 200 if result.duplicate else 202)

    # ---- the server -----------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return JSON({"status": "stopping" if self.stopping.is_set() else "ok"})

    async def openapi(self, request: Request) -> Response:
        return JSON(document(self.config.url))


class Streamed(Response):
    """A Response that hands the ASGI exchange to an SSE stream."""

    def __init__(self, stream: sse.EventStream) -> None:
        super().__init__(status_code=200)
        self.stream = stream

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.stream(scope, receive, send)


def wait_seconds(text: str | None) -> float | None:
    if text is None:
        return None
    ms = parse_duration(text)
    if ms is None or ms > MAX_WAIT_MS:
        raise ApiError(400, "malformed", f"wait must be a duration up to 5m such as 500ms or "
                       f"10s, not '{text}'")
    return ms / 1000


def guarded(handler: Handler, mask: Callable[[str], str]) -> Handler:
    """Every refusal as the JSON error, and a bug as a 500 that shows nothing inside."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            exc.message = mask(exc.message)
            exc.details = [mask(str(d)) for d in exc.details]
            return error_response(exc)
        except (EngineError, PlaybookError) as exc:
            error = engine_error(exc)
            error.message = mask(error.message)
            error.details = [mask(str(d)) for d in error.details]
            return error_response(error)
        except Unavailable:  # the store is away (serve says so once): a retry may pass
            return JSON(error_body("unavailable", "the workspace's store is unavailable for "
                                   "now; nothing was recorded: try again later"), 503,
                        headers={"Retry-After": "5"})
        except Exception as exc:  # a bug: logged for the operator, never shown to clients
            text = "".join(traceback.format_exception(exc))
            print(mask(f"internal error on {request.method} {request.url.path}:\n{text}"),
                  file=sys.stderr, flush=True)
            return JSON(error_body("internal", "internal error (the server's log has the "
                                   "details)"), 500)

    return endpoint


def routes(api: Api, mask: Callable[[str], str]) -> list[BaseRoute]:
    table: Sequence[tuple[str, str, Handler]] = (
        ("/healthz", "GET", api.healthz),
        ("/api/v1/openapi.json", "GET", api.openapi),
        ("/api/v1/runs", "POST", api.start_run),
        ("/api/v1/runs", "GET", api.list_runs),
        ("/api/v1/runs/{run}", "GET", api.get_run),
        ("/api/v1/runs/{run}/timeline", "GET", api.timeline),
        ("/api/v1/runs/{run}/events", "GET", api.run_events),
        ("/api/v1/runs/{run}/gates/{gate}", "POST", api.decide),
        ("/api/v1/runs/{run}/steps/{step}/resolve", "POST", api.resolve),
        ("/api/v1/runs/{run}/cancel", "POST", api.cancel),
        ("/api/v1/inbox", "GET", api.inbox),
        ("/api/v1/events", "POST", api.emit),
        ("/api/v1/events/stream", "GET", api.workspace_events),
        ("/hooks/{source}", "POST", api.hook),
    )
    return [Route(path, guarded(handler, mask), methods=[method], name=f"{method} {path}")
            for path, method, handler in table]


async def not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        return JSON(error_body("method_not_allowed", f"{request.method} is not allowed on "
                               f"{request.url.path}"), 405)
    return JSON(error_body("not_found", f"no route {request.url.path}"), 404)


def build_app(engine: Engine, config: ServerConfig, stopping: trio.Event,
              extra: Sequence[BaseRoute] = ()) -> BearerAuth:
    """The ASGI application: the API's routes (and ``extra`` ones, for benchmarks) behind
    bearer-token authentication, and the operator's page (``/ui/``, its own login)."""
    from .ui import ui_routes

    api = Api(engine, config, stopping)
    app = Starlette(routes=[*routes(api, engine.ws.masker.text),
                            *ui_routes(engine, config, stopping), *extra],
                    exception_handlers={404: not_found, 405: not_found})
    return BearerAuth(app, config.tokens)
