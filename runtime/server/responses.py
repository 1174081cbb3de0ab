"""JSON answers and the one error shape of the API: ``{error: {code, message, details}}``.

:class:`ApiError` is what a route raises for a request it refuses; :func:`engine_error`
maps the Engine's error tree onto status codes (DESIGN section 10), so every route answers
a refusal the same way and never with a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aiosrun.dsl.errors import PlaybookError
from aiosrun.runtime.errors import (
    BadRequest,
    Conflict,
    EngineError,
    InvalidInputs,
    NotFound,
)
from starlette.responses import Response


class ApiError(Exception):
    """A request refused with ``status``; ``code`` is a stable word for programs."""

    def __init__(self, status: int, code: str, message: str,
                 details: Sequence[Any] = (), headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = headers or {}


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class JSON(Response):
    """A JSON response without Starlette's re-encoding checks (answers are plain JSON)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def error_body(code: str, message: str, details: Sequence[Any] = ()) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": list(details)}}


def error_response(error: ApiError) -> JSON:
    return JSON(error_body(error.code, error.message, error.details), error.status,
                headers=error.headers)


def engine_error(exc: EngineError | PlaybookError) -> ApiError:
    """The API's answer to an error the Engine raised."""
    if isinstance(exc, InvalidInputs):
        return ApiError(422, "invalid_inputs", "the inputs do not fit the playbook",
                        exc.problems)
    if isinstance(exc, PlaybookError):
        return ApiError(422, "invalid_playbook", "the playbook is invalid",
                        [d.format() for d in exc.diagnostics])
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, Conflict):
        return ApiError(409, "conflict", str(exc))
    if isinstance(exc, BadRequest):
        return ApiError(400, "bad_request", str(exc))
    return ApiError(400, "bad_request", str(exc))
