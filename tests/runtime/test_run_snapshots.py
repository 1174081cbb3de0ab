"""Run snapshots in their compact layout (the run on one line, then a line per step, steps
decoded when used): what a snapshot plus the tail gives is what folding every record gives,
a step changed after loading is saved with its change, and the earlier layout still loads."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from aiosrun.runtime.log.eventlog import EventLog, NewEvent, Record
from aiosrun.runtime.log.projections import (
    RunState,
    StepState,
    fold_run,
    load_run_snapshot,
    save_snapshot,
    snapshot_text,
)


def _records(tmp_path: Path, steps: int) -> list[Record]:
    log = EventLog(tmp_path / "log").open()
    events = [NewEvent("RunStarted", {"playbook": "p", "digest": "d", "inputs": {"n": 1}},
                       run="r")]
    for i in range(steps):
        path = f"s{i}" if i % 3 else f"fan/s{i}"
        events += [NewEvent("StepStarted", {"path": path, "id": f"s{i}", "attempt": 1},
                            run="r"),
                   NewEvent("StepAttemptFailed", {"path": path, "attempt": 1,
                                                  "error_class": "x", "message": "ü"},
                            run="r"),
                   NewEvent("StepSucceeded" if i % 5 else "StepFailed",
                            {"path": path, "outputs": {"v": [i, None, "é\n"]},
                             "attempts": 2, "error_class": "e", "message": "m"}, run="r")]
    records = log.append_many(events)
    log.close()
    return records


def test_a_snapshot_and_its_tail_fold_to_the_state_of_every_record(tmp_path: Path) -> None:
    records = _records(tmp_path, 40)
    cut = len(records) // 2
    path = tmp_path / "snapshots" / "r.json"
    save_snapshot(path, fold_run("r", records[:cut]))
    loaded = load_run_snapshot(path)
    assert loaded is not None
    assert fold_run("r", records[cut:], loaded) == fold_run("r", records)
    assert json.loads(snapshot_text(loaded).split("\n")[1])["steps"] == len(loaded.steps)


def test_a_step_changed_after_loading_is_saved_with_its_change(tmp_path: Path) -> None:
    records = _records(tmp_path, 20)
    path = tmp_path / "r.json"
    save_snapshot(path, fold_run("r", records))
    loaded = load_run_snapshot(path)
    assert loaded is not None
    loaded.steps["s1"].status = "cancelled"
    loaded.steps["s2"].history.append({"attempt": 9})
    save_snapshot(path, loaded)  # the untouched steps go back as the lines they were read from
    again = load_run_snapshot(path)
    assert again is not None and again == loaded
    assert again.steps["s1"].status == "cancelled"
    assert again.steps["s2"].history[-1] == {"attempt": 9}
    assert again.steps["s4"] == fold_run("r", records).steps["s4"]


def test_the_layout_of_one_json_object_still_loads(tmp_path: Path) -> None:
    records = _records(tmp_path, 5)
    state = fold_run("r", records)
    body = json.dumps(state, default=vars)
    path = tmp_path / "old.json"
    path.write_text(f"aiosrun-snapshot crc32={zlib.crc32(body.encode()):08x}\n{body}")
    assert load_run_snapshot(path) == state


def test_a_run_without_steps_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    save_snapshot(path, RunState("r", playbook="p", last_seq=3))
    assert load_run_snapshot(path) == RunState("r", playbook="p", last_seq=3)


def _saved_and_loaded(tmp_path: Path) -> tuple[RunState, RunState]:
    """A 20-step run folded from its records, and the same run saved and loaded back."""
    folded = fold_run("r", _records(tmp_path, 20))
    save_snapshot(tmp_path / "r.json", folded)
    loaded = load_run_snapshot(tmp_path / "r.json")
    assert loaded is not None
    return folded, loaded


def test_a_loaded_step_reads_as_it_was_saved_before_anything_touches_it(tmp_path: Path) -> None:
    """Every field of a step has a default: a step not yet decoded must still read as the
    one saved, or a resume from the snapshot would run finished steps again."""
    folded, loaded = _saved_and_loaded(tmp_path)
    for step_path, step in folded.steps.items():
        stored = loaded.steps[step_path]
        assert (stored.status, stored.outputs, stored.attempts) == (
            step.status, step.outputs, step.attempts), step_path


def test_a_step_once_read_is_a_plain_step_and_saves_as_one(tmp_path: Path) -> None:
    """Reading a field decodes the step into a plain StepState, so later reads (and the
    next save) cost what a folded step's do; equality holds both ways, decoded or not."""
    folded, loaded = _saved_and_loaded(tmp_path)
    step = loaded.steps["s1"]
    assert step.attempts == folded.steps["s1"].attempts
    assert type(step) is StepState and step == folded.steps["s1"] == step
    assert folded.steps["s2"] == loaded.steps["s2"]  # not decoded yet, asked from the other side
    step.status = "cancelled"
    save_snapshot(tmp_path / "r.json", loaded)
    again = load_run_snapshot(tmp_path / "r.json")
    assert again is not None and again.steps["s1"].status == "cancelled"
    assert again == loaded
