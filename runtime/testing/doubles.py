"""A test case's stand-ins: mocked actions and steps, given model answers, call counts.

Unmocked built-in actions run for real inside the case's copy of the workspace, except the
two that would reach the network (``http.request``, and ``email.send`` when SMTP is set):
those are refused with a message that says how to mock them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiosrun.adapters.base import ERROR_CLASSES, PermanentError
from aiosrun.adapters.llm import ModelAnswer


class CaseDoubles:
    def __init__(self, mocks: Mapping[str, Any], models: Mapping[str, Any], folder: Path,
                 smtp: bool) -> None:
        self.mocks = dict(mocks)
        self.models = dict(models)
        self.folder = folder  # the test file's folder: cassettes are relative to it
        self.smtp = smtp
        self.calls: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()

    async def call(self, action: str, step_id: str, path: str, attempt: int,
                   args: Mapping[str, Any]) -> dict[str, Any] | None:
        self.calls[action] += 1
        mock = self.mocks.get(step_id) or self.mocks.get(action)
        if mock is None:
            if action == "http.request":
                raise PermanentError(f"step '{step_id}': http.request is not mocked and tests "
                                     f"never reach the network; add `mocks: {{{step_id}: "
                                     "{outputs: {...}}}` (or http.request) to the case")
            if action == "email.send" and self.smtp:
                raise PermanentError(f"step '{step_id}': email.send would go out over SMTP and "
                                     "tests never reach the network; mock it")
            return None
        fail = mock.get("fail")
        if fail is not None:
            times = fail.get("times")
            key = step_id if step_id in self.mocks else action
            if times is None or self.failures[f"{key}:{path}"] < times:
                self.failures[f"{key}:{path}"] += 1
                kind = ERROR_CLASSES[fail["error"]]
                raise kind(fail.get("message") or f"mocked {fail['error']} failure "
                                                  f"(attempt {attempt})")
        return dict(mock.get("outputs") or {})

    def answer(self, step_id: str) -> ModelAnswer | None:
        given = self.models.get(step_id)
        if given is None:
            return None
        if "output" in given:
            return ModelAnswer(given["output"])
        cassette = self.folder / str(given["cassette"])
        entries = [json.loads(line) for line in cassette.read_text("utf-8").splitlines()
                   if line.strip()]
        chosen = next((e for e in entries
                       if str((e.get("match") or {}).get("step", "")).endswith(f"/{step_id}")),
                      entries[0] if entries else None)
        if chosen is None:
            raise PermanentError(f"{cassette}: no answer in this cassette")
        return ModelAnswer(chosen.get("output"))
