"""An in-process harness: a real workspace on disk, a real event log, trio's MockClock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from aiosrun.dsl.ir_codec import encode
from aiosrun.dsl.loader import load_text
from aiosrun.dsl.validate import validate_document
from aiosrun.runtime.coordinator.interpreter import Runner
from aiosrun.runtime.coordinator.runs import start_or_load
from aiosrun.runtime.log.eventlog import NewEvent
from aiosrun.runtime.log.projections import RunState, Version
from aiosrun.runtime.workspace import Workspace

HEADER = "apiVersion: aiosrun/v1\nkind: Playbook\nname: {name}\n"


class Harness:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n")
        self.ws = Workspace(root)
        self.clock = trio.testing.MockClock(autojump_threshold=0)
        self.times: list[tuple[str, float]] = []

    def add(self, body: str, name: str = "t", apply: bool = True) -> Version:
        playbook = validate_document(load_text(HEADER.format(name=name) + body, f"{name}.yaml"))
        kind = "PlaybookApplied" if apply else "PlaybookVersionRecorded"
        record = self.ws.log.append(NewEvent(kind, {
            "name": playbook.name, "digest": playbook.digest, "source": f"{name}.yaml",
            "ir": encode(playbook)}))
        return Version(playbook.name, playbook.digest, "", None, record.seq, encode(playbook))

    def run(self, body: str, inputs: dict[str, Any] | None = None, name: str = "t") -> RunState:
        self.add(body, name)
        playbook, state = start_or_load(self.ws, name, inputs or {})
        return self.execute(playbook, state)

    def execute(self, playbook: Any, state: RunState) -> RunState:
        def note(record: Any, _state: RunState) -> None:
            self.times.append((record.type + ":" + str(record.data.get("path", "")),
                               trio.current_time()))

        runner = Runner(self.ws, playbook, state, note)
        result: RunState = trio.run(runner.execute, clock=self.clock)
        return result

    def read(self, relative: str) -> str:
        return (self.root / relative).read_text()


@pytest.fixture
def harness(tmp_path: Path) -> Callable[[], Harness]:
    made: list[Harness] = []

    def make() -> Harness:
        made.append(Harness(tmp_path))
        return made[-1]

    yield make  # type: ignore[misc]
    for h in made:
        h.ws.close()
