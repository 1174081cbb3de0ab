"""The routes of ``/ui/``: each reads through the Engine, renders a template, and for a form
checks the session and its CSRF token before it calls the Engine.

A GET without a login goes to ``/ui/login``; a POST without a login, or without the
session's CSRF token, is refused with 403 and changes nothing. A decision's outcome (or
the Engine's refusal: a gate decided meanwhile) is shown once on the next page (a flash),
after a 303 redirect, so a reload never posts twice. Without ``server.tokens`` (a loopback
server) there is no login, but the cookie and the CSRF tokens are the same.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

import trio
from aiosrun.dsl.errors import PlaybookError
from aiosrun.runtime.errors import EngineError
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from .. import sse
from ..auth import token_matches
from ..bodies import read_body
from ..config import ServerConfig
from ..responses import ApiError
from . import gantt
from .render import render
from .sessions import COOKIE, Session, Sessions

if TYPE_CHECKING:
    from aiosrun.runtime.engine import Engine

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"ui.css": "text/css", "ui.js": "text/javascript"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
STATUSES = ("running", "waiting", "succeeded", "failed", "compensated", "cancelled",
            "needs_attention")
MAX_RUNS = 300
NAV = (("inbox", "Inbox"), ("runs", "Runs"), ("playbooks", "Playbooks"),
       ("memory", "Memory"), ("spend", "Spend"))

Page = Callable[[Request, Session], Awaitable[Response]]
Form = dict[str, str]


class Refused(Exception):
    """A request the page answers with an error page (status and text)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Ui:
    def __init__(self, engine: Engine, config: ServerConfig, stopping: trio.Event) -> None:
        self.engine = engine
        self.config = config
        self.stopping = stopping
        self.sessions = Sessions()
        self.secure = (config.public_url or "").startswith("https://")

    # ---- plumbing -------------------------------------------------------------------------

    def html(self, request: Request, session: Session | None, template: str,
             code: int = 200, **context: Any) -> HTMLResponse:
        page = render(template, nav=NAV, session=session, csrf=session.csrf if session else "",
                      flash=session.take_flash() if session else [],
                      path=request.url.path, authenticated=bool(session and
                                                                session.authenticated),
                      needs_login=bool(self.config.tokens), **context)
        response = HTMLResponse(page, code, headers=SECURITY_HEADERS)
        if session is not None:
            self.set_cookie(response, session)
        return response

    def set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict",
                            secure=self.secure, path="/ui")

    def session_of(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    async def form(self, request: Request) -> Form:
        raw = await read_body(request, self.config.max_body, self.config.read_timeout)
        try:
            fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
        except (UnicodeDecodeError, ValueError):
            raise Refused(400, "The form could not be read.") from None
        return {k: v[0] for k, v in fields.items()}

    def redirect(self, to: str, session: Session | None = None) -> RedirectResponse:
        response = RedirectResponse(to, 303, headers=SECURITY_HEADERS)
        if session is not None:
            self.set_cookie(response, session)
        return response

    def guard(self, handler: Page, *, post: bool = False) -> Callable[[Request],
                                                                    Awaitable[Response]]:
        """The login (and, for a form, CSRF) check in front of a page, and its errors as
        pages: never a traceback, never a secret."""

        async def endpoint(request: Request) -> Response:
            session = self.session_of(request)
            if session is None and not self.config.tokens:
                session = self.sessions.new(authenticated=True)
            try:
                if session is None or not session.authenticated:
                    if post:
                        raise Refused(403, "You are not logged in (or your session ended): "
                                      "log in and try again.")
                    return self.redirect("/ui/login?next=" + quote(request.url.path))
                if post:
                    form = await self.form(request)
                    if not session.csrf_ok(form.get("csrf")):
                        raise Refused(403, "This form's CSRF token is missing or out of date, "
                                      "so nothing was done: reload the page and try again.")
                    request.state.form = form
                return await handler(request, session)
            except Refused as exc:
                return self.html(request, session, "error.html", exc.status,
                                 message=self.mask(exc.message))
            except ApiError as exc:
                return self.html(request, session, "error.html", exc.status,
                                 message=self.mask(exc.message))
            except (EngineError, PlaybookError) as exc:
                status = 404 if type(exc).__name__ == "NotFound" else 409 if type(
                    exc).__name__ == "Conflict" else 400
                return self.html(request, session, "error.html", status,
                                 message=self.mask(str(exc)))
            except Exception as exc:  # a bug: logged for the operator, never shown
                text = "".join(traceback.format_exception(exc))
                print(self.mask(f"internal error on {request.method} {request.url.path}:\n"
                                f"{text}"), file=sys.stderr, flush=True)
                return self.html(request, session, "error.html", 500,
                                 message="Internal error (the server's log has the details).")

        return endpoint

    def mask(self, text: str) -> str:
        return self.engine.ws.masker.text(text)

    async def act(self, session: Session, done: str, call: Callable[[], Awaitable[Any]]) -> None:
        """Carry out a decision (shielded: a closed tab does not stop it half way) and say
        how it went on the next page."""
        try:
            with trio.CancelScope(shield=True):
                await call()
            session.flash.append(("ok", done))
        except (EngineError, PlaybookError) as exc:
            session.flash.append(("error", self.mask(str(exc))))

    # ---- login ----------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        session = self.session_of(request) or self.sessions.new(not self.config.tokens)
        if session.authenticated:
            return self.redirect(safe_next(request.query_params.get("next")), session)
        return self.html(request, session, "login.html", next=safe_next(
            request.query_params.get("next")), error=None)

    async def login(self, request: Request) -> Response:
        session = self.session_of(request)
        form = await self.form(request)
        if session is None or not session.csrf_ok(form.get("csrf")):
            fresh = self.sessions.new()
            return self.html(request, fresh, "login.html", 403, next=safe_next(
                form.get("next")), error="The login form was out of date: try again.")
        token = form.get("token", "").strip().encode("utf-8")
        if self.config.tokens and not token_matches(b"Bearer " + token, self.config.tokens):
            return self.html(request, session, "login.html", 401, next=safe_next(
                form.get("next")), error="That token is not one of server.tokens.")
        self.sessions.drop(session)  # a new id once logged in: no session fixation
        return self.redirect(safe_next(form.get("next")), self.sessions.new(authenticated=True))

    async def logout(self, request: Request, session: Session) -> Response:
        self.sessions.drop(session)
        response = self.redirect("/ui/login")
        response.delete_cookie(COOKIE, path="/ui")
        return response

    # ---- the inbox ------------------------------------------------------------------------

    async def inbox_context(self) -> dict[str, Any]:
        items = [item.to_json() for item in await self.engine.inbox()]
        afterwards: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            if item["kind"] == "gate" and item.get("run"):
                item["next_steps"] = await self.after_gate(item, afterwards)
        return {"items": items}

    async def after_gate(self, item: dict[str, Any],
                         cache: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """The steps that follow a gate, from the plan of the run's version: what approving
        will set going."""
        run = await self.engine.get(str(item["run"]))
        if run.playbook not in cache:
            try:
                plan = (await self.engine.plan(run.playbook)).to_json()
            except (EngineError, PlaybookError):
                plan = {}
            cache[run.playbook] = (list(plan.get("steps") or ())
                                   if plan.get("version") == run.version else [])
        steps = cache[run.playbook]
        index = next((i for i, s in enumerate(steps) if s.get("path") == item.get("step")),
                     None)
        if index is None:
            return []
        return [s for s in steps[index + 1:] if s.get("depth", 0) == 0][:8]

    async def inbox(self, request: Request, session: Session) -> Response:
        return self.html(request, session, "inbox.html", **await self.inbox_context())

    async def inbox_live(self, request: Request, session: Session) -> Response:
        return self.html(request, session, "_inbox_items.html", **await self.inbox_context())

    async def decide(self, request: Request, session: Session) -> Response:
        run_id, gate = request.path_params["run"], request.path_params["gate"]
        form: Form = request.state.form
        decision = form.get("decision")
        if decision not in ("approve", "reject"):
            raise Refused(400, "The decision must be approve or reject.")
        comment = form.get("comment", "").strip() or None
        call = self.engine.approve if decision == "approve" else self.engine.reject
        done = f"{'Approved' if decision == 'approve' else 'Rejected'} gate '{gate}' of run " \
               f"{run_id}."
        await self.act(session, done, lambda: call(run_id, gate, comment=comment))
        return self.redirect(back(form))

    async def resolve(self, request: Request, session: Session) -> Response:
        run_id, step = request.path_params["run"], request.path_params["step"]
        form: Form = request.state.form
        action = form.get("action", "")
        outputs: Any = None
        if action == "skip" and form.get("outputs", "").strip():
            try:
                outputs = json.loads(form["outputs"])
            except ValueError as exc:
                session.flash.append(("error", f"The outputs are not JSON ({exc}); nothing "
                                      "was done."))
                return self.redirect(back(form))
        verb = {"retry": "Retrying", "skip": "Skipped", "abort": "Aborted"}.get(action, action)
        await self.act(session, f"{verb} step '{step}' of run {run_id}.",
                       lambda: self.engine.resolve(run_id, step, action, outputs))
        return self.redirect(back(form))

    async def dismiss(self, request: Request, session: Session) -> Response:
        item = request.path_params["item"]
        await self.act(session, f"Dismissed rejected event {item}.",
                       lambda: self.engine.dismiss(item))
        return self.redirect(back(request.state.form))

    async def cancel(self, request: Request, session: Session) -> Response:
        run_id = request.path_params["run"]
        await self.act(session, f"Cancelled run {run_id}.", lambda: self.engine.cancel(run_id))
        return self.redirect(f"/ui/runs/{quote(run_id)}")

    # ---- runs -----------------------------------------------------------------------------

    async def runs(self, request: Request, session: Session) -> Response:
        status = request.query_params.get("status") or None
        playbook = request.query_params.get("playbook") or None
        if status is not None and status not in STATUSES:
            raise Refused(400, f"There is no run status '{status}'.")
        listed = [r for r in await self.engine.runs(status)
                  if r.parent is None and (playbook is None or r.playbook == playbook)]
        everything = await self.engine.runs()
        names = sorted({r.playbook for r in everything})
        return self.html(request, session, "runs.html", runs=list(reversed(listed))[:MAX_RUNS],
                         total=len(listed), statuses=STATUSES, status=status,
                         playbook=playbook, playbooks=names)

    async def run_context(self, run_id: str) -> dict[str, Any]:
        run = await self.engine.get(run_id)
        tree = (await self.engine.timeline(run_id)).to_json()
        now = None
        if not run.finished and run.started_at:
            started = dt.datetime.strptime(run.started_at, "%Y-%m-%dT%H:%M:%S.%fZ")
            now = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - started).total_seconds()
        items = [{"run": run.id, "playbook": run.playbook, **p} for p in run.pending]
        return {"run": run, "timeline": tree, "chart": gantt.chart(tree, now), "items": items,
                "children": [c.get("run") for c in tree.get("children") or ()]}

    async def run_page(self, request: Request, session: Session) -> Response:
        return self.html(request, session, "run.html",
                         **await self.run_context(request.path_params["run"]))

    async def run_live(self, request: Request, session: Session) -> Response:
        return self.html(request, session, "_run_live.html",
                         **await self.run_context(request.path_params["run"]))

    async def run_events(self, request: Request, session: Session) -> Response:
        run = await self.engine.get(request.path_params["run"])
        after = sse.resume_point(request.headers.get("last-event-id"),
                                 request.query_params.get("after"), 0)
        return Streamed(sse.EventStream(self.engine.subscribe(run.id, max(after, 0)),
                                        self.stopping, until_run_ends=True))

    async def events(self, request: Request, session: Session) -> Response:
        after = sse.resume_point(request.headers.get("last-event-id"),
                                 request.query_params.get("after"), self.engine.last_seq)
        return Streamed(sse.EventStream(self.engine.subscribe(None, max(after, 0)),
                                        self.stopping, until_run_ends=False))

    # ---- playbooks, memory, spend ---------------------------------------------------------

    async def playbooks(self, request: Request, session: Session) -> Response:
        listed = (await self.engine.playbook_versions()).to_json()["playbooks"]
        return self.html(request, session, "playbooks.html", playbooks=listed)

    async def playbook(self, request: Request, session: Session) -> Response:
        name = request.path_params["name"]
        found = [p for p in (await self.engine.playbook_versions()).to_json()["playbooks"]
                 if p["name"] == name]
        if not found:
            raise Refused(404, f"No playbook named '{name}' was ever applied.")
        book = found[0]
        digests = [v["digest"] for v in book["versions"]]
        a = request.query_params.get("a") or (digests[-2] if len(digests) > 1 else None)
        b = request.query_params.get("b") or (digests[-1] if digests else None)
        diff: list[tuple[str, str]] = []
        if a and b:
            if a not in digests or b not in digests:
                raise Refused(404, f"'{name}' has no such version.")
            old = (await self.engine.version_text(a)).splitlines()
            new = (await self.engine.version_text(b)).splitlines()
            for line in difflib.unified_diff(old, new, a[:12], b[:12], lineterm="", n=3):
                kind = ("add" if line.startswith("+") else "del" if line.startswith("-")
                        else "hunk" if line.startswith("@@") else "same")
                diff.append((kind, line))
        plan = None
        plan_error = None
        if book["current"]:
            try:
                plan = (await self.engine.plan(name)).to_json()
            except (EngineError, PlaybookError) as exc:
                plan_error = self.mask(str(exc))
        return self.html(request, session, "playbook.html", book=book, a=a, b=b, diff=diff,
                         plan=plan, plan_error=plan_error)

    async def memory(self, request: Request, session: Session) -> Response:
        domains = list(self.engine.memory.domains)
        domain = request.query_params.get("domain") or None
        query = (request.query_params.get("q") or "").strip()
        hits: list[dict[str, Any]] = []
        error = None
        if domain is not None and domain not in domains:
            error = f"There is no memory domain '{domain}'."
        elif query:
            try:
                found = await self.engine.memory.search(
                    query, domains=[domain] if domain else None, k=10)
                hits = [h.to_json() for h in found]
            except EngineError as exc:
                error = self.mask(str(exc))
        return self.html(request, session, "memory.html", domains=domains, domain=domain,
                         query=query, hits=hits, error=error)

    async def spend(self, request: Request, session: Session) -> Response:
        data = (await self.engine.spend()).to_json()
        days = data["days"]
        top = max([*days.values(), 0.000001])
        per_playbook = {name: sum(d.values()) for name, d in data["playbooks"].items()}
        today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
        return self.html(request, session, "spend.html", days=days, top=top,
                         playbooks=data["playbooks"], totals=per_playbook,
                         budget=data["budget"], today=today,
                         today_spent=days.get(today, 0.0),
                         month_spent=sum(v for d, v in days.items() if d[:7] == today[:7]))

    async def static(self, request: Request) -> Response:
        name = request.path_params["file"]
        if name not in STATIC_FILES:
            return HTMLResponse("not found", 404, headers=SECURITY_HEADERS)
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name],
                            headers={"Cache-Control": "max-age=300",
                                     "X-Content-Type-Options": "nosniff"})

    async def home(self, request: Request) -> Response:
        return self.redirect("/ui/inbox")


class Streamed(Response):
    def __init__(self, stream: sse.EventStream) -> None:
        super().__init__(status_code=200)
        self.stream = stream

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.stream(scope, receive, send)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a page of /ui/ only (never another site)."""
    if target and target.startswith("/ui/") and not target.startswith("/ui//") \
            and "\\" not in target:
        return target
    return "/ui/inbox"


def back(form: Form) -> str:
    return safe_next(form.get("next"))


def ui_routes(engine: Engine, config: ServerConfig, stopping: trio.Event) -> list[BaseRoute]:
    ui = Ui(engine, config, stopping)
    g = ui.guard
    return [
        Route("/ui", ui.home, methods=["GET"]),
        Route("/ui/", ui.home, methods=["GET"]),
        Route("/ui/login", ui.login_page, methods=["GET"]),
        Route("/ui/login", ui.login, methods=["POST"]),
        Route("/ui/logout", g(ui.logout, post=True), methods=["POST"]),
        Route("/ui/static/{file}", ui.static, methods=["GET"]),
        Route("/ui/inbox", g(ui.inbox), methods=["GET"]),
        Route("/ui/inbox/live", g(ui.inbox_live), methods=["GET"]),
        Route("/ui/inbox/dismiss/{item}", g(ui.dismiss, post=True), methods=["POST"]),
        Route("/ui/events", g(ui.events), methods=["GET"]),
        Route("/ui/runs", g(ui.runs), methods=["GET"]),
        Route("/ui/runs/{run}", g(ui.run_page), methods=["GET"]),
        Route("/ui/runs/{run}/live", g(ui.run_live), methods=["GET"]),
        Route("/ui/runs/{run}/events", g(ui.run_events), methods=["GET"]),
        Route("/ui/runs/{run}/gates/{gate}", g(ui.decide, post=True), methods=["POST"]),
        Route("/ui/runs/{run}/steps/{step}/resolve", g(ui.resolve, post=True),
              methods=["POST"]),
        Route("/ui/runs/{run}/cancel", g(ui.cancel, post=True), methods=["POST"]),
        Route("/ui/playbooks", g(ui.playbooks), methods=["GET"]),
        Route("/ui/playbooks/{name}", g(ui.playbook), methods=["GET"]),
        Route("/ui/memory", g(ui.memory), methods=["GET"]),
        Route("/ui/spend", g(ui.spend), methods=["GET"]),
    ]
