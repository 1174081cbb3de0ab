"""Version records read without parsing their IR (``read(skim=True)``, the workspace's
fold): the fields the fold uses are those of the record, the IR read later is the recorded
one whatever the layout, and anything else is parsed whole as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiosrun.dsl.ir_codec import encode
from aiosrun.dsl.loader import load_text
from aiosrun.dsl.validate import validate_document
from aiosrun.runtime.log.eventlog import EventLog, NewEvent
from aiosrun.runtime.log.skim import RawJson, plain_ir
from aiosrun.runtime.workspace import Workspace


def _ir(steps: int = 200) -> Any:
    body = "".join(f"  - id: s{i}\n    set: {{v: {i}}}\n" for i in range(steps))
    playbook = validate_document(load_text(
        f"apiVersion: aiosrun/v1\nkind: Playbook\nname: big\nsteps:\n{body}", "big.yaml"))
    return json.loads(json.dumps(encode(playbook)))


def _read_both(tmp_path: Path, data: dict[str, Any], kind: str = "PlaybookApplied"
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    log = EventLog(tmp_path / "log").open()
    try:
        log.append(NewEvent(kind, data))
        whole = next(iter(log.read()))
        skimmed = next(iter(log.read(skim=True)))
    finally:
        log.close()
    assert (whole.seq, whole.type) == (skimmed.seq, skimmed.type)
    return dict(whole.data), dict(skimmed.data)


def test_a_large_version_keeps_its_fields_and_its_ir_as_text(tmp_path: Path) -> None:
    ir = _ir()
    data = {"name": "big", "digest": "ab" * 32, "source": 'odd ,"ir": name.yaml',
            "commit": None, "ir": ir}
    whole, skimmed = _read_both(tmp_path, data)
    assert isinstance(skimmed["ir"], RawJson)
    assert {k: v for k, v in skimmed.items() if k != "ir"} == {
        k: v for k, v in whole.items() if k != "ir"}
    assert plain_ir(skimmed["ir"]) == whole["ir"] == ir


def test_an_ir_followed_by_another_field_is_still_read_whole(tmp_path: Path) -> None:
    ir = _ir()
    whole, skimmed = _read_both(tmp_path, {"name": "big", "digest": "d", "ir": ir,
                                           "later": {"x": 1}})
    assert isinstance(skimmed["ir"], RawJson)
    assert plain_ir(skimmed["ir"]) == ir == whole["ir"]


def test_other_records_are_parsed_whole(tmp_path: Path) -> None:
    ir = _ir()
    cases: list[tuple[str, dict[str, Any]]] = [
        ("PlaybookApplied", {"name": "small", "digest": "d", "ir": _ir(3)}),  # small
        ("StepSucceeded", {"name": "big", "digest": "d", "ir": ir}),  # not a version
        ("PlaybookApplied", {"ir": ir, "name": "big", "digest": "d"}),  # IR first
        ("PlaybookApplied", {"name": "big", "meta": {"pad": "x", "ir": 1}, "digest": "d",
                             "ir": ir}),  # a nested "ir" key first
    ]
    for i, (kind, data) in enumerate(cases):
        whole, skimmed = _read_both(tmp_path / str(i), data, kind)
        assert skimmed == whole == data, i


def test_the_workspace_fold_leaves_the_ir_unparsed_until_asked(tmp_path: Path) -> None:
    ir = _ir()
    (tmp_path / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\n")
    with Workspace(tmp_path) as ws:
        ws.log.append(NewEvent("PlaybookApplied", {"name": "big", "digest": "d" * 64,
                                                   "source": "big.yaml", "ir": ir}))
    with Workspace(tmp_path) as ws:
        version = ws.workspace_state(copy=False).versions["d" * 64]
        assert isinstance(version.ir, RawJson) and version.source == "big.yaml"
        assert ws.version_ir("d" * 64) == ir
