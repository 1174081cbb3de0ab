"""Forking a run: a new run of the playbook's current version whose first steps are taken
from an old run, outputs and all, without executing them again (``aiosrun fork``).

The old run is left as it was. The fork's ``RunStarted`` names its origin; each reused step
is recorded as succeeded (or skipped) with ``reused_from``, so the timeline shows where it
came from and compensation never undoes an effect that belongs to the origin.
"""

from __future__ import annotations

from typing import Any

from aiosrun.dsl import ir
from aiosrun.runtime.coordinator.inputs import check_inputs
from aiosrun.runtime.coordinator.runs import new_run_id
from aiosrun.runtime.errors import BadRequest, Conflict, InvalidInputs, NotFound
from aiosrun.runtime.log.eventlog import NewEvent
from aiosrun.runtime.log.projections import RunState, StepState, fold_run
from aiosrun.runtime.workspace import Workspace

REUSABLE = ("succeeded", "skipped")


def fork_run(ws: Workspace, run_id: str, from_step: str | None,
             at_seq: int | None) -> tuple[ir.Playbook, RunState]:
    """Record the fork (its start and its reused steps) and return it, ready to execute."""
    if (from_step is None) == (at_seq is None):
        raise BadRequest("give the step to fork from or the seq to fork at (one of them)")
    old: RunState = ws.run_state(run_id)
    digest = ws.workspace_state().current.get(old.playbook)
    if digest is None:
        raise NotFound(f"playbook '{old.playbook}' is no longer applied: nothing to fork onto")
    playbook: ir.Playbook = ws.playbook(digest)
    try:
        inputs = check_inputs(playbook, dict(old.inputs or {}))
    except InvalidInputs as exc:
        raise Conflict(f"the inputs of run {run_id} no longer fit {playbook.name} "
                       f"{digest[:12]}: {exc}") from None
    top = [p for p in old.order if "/" not in p and "[" not in p]
    if from_step is not None:
        if from_step not in top:
            raise NotFound(f"run {run_id} has no step '{from_step}' at its top level "
                           f"(steps: {', '.join(top) or 'none'})")
        chosen = top[: top.index(from_step)]
        source = old
    else:
        assert at_seq is not None
        source = ws.run_state(run_id, at_seq)
        chosen = [p for p in top if p in source.steps]
    reused = []
    for path in chosen:
        step = source.steps[path]
        if step.status not in REUSABLE:
            break  # what comes after a step that did not end well is done again
        if old.compensations.get(path) == "succeeded":
            raise Conflict(f"step '{path}' of run {run_id} was compensated (undone): the "
                           "fork cannot reuse it")
        reused.append(path)
    present = {s.id for s in playbook.steps}
    for path in reused:
        if path not in present:
            raise Conflict(f"the current version of {playbook.name} ({digest[:12]}) has no "
                           f"step '{path}' that the fork would reuse")
    state = RunState(new_run_id())
    events = [NewEvent("RunStarted", ws.masker.data({
        "playbook": playbook.name, "digest": playbook.digest, "inputs": inputs,
        "parent": None, "parent_step": None, "trigger": old.trigger,
        "forked_from": {"run": run_id, "step": from_step, "seq": at_seq}}), run=state.id)]
    for path in reused:
        nested = [p for p in source.order if p == path or p.startswith((f"{path}/",
                                                                         f"{path}["))]
        events += [_copied(source.steps[p], run_id, state.id) for p in nested
                   if source.steps[p].status in REUSABLE]
    records = ws.log.append_many(events)
    return playbook, fold_run(state.id, records)


def _copied(step: StepState, origin: str, run: str) -> NewEvent:
    data: dict[str, Any] = {"path": step.path, "id": step.id, "reused_from": origin}
    if step.status == "skipped":
        return NewEvent("StepSkipped", data, run=run)
    return NewEvent("StepSucceeded", data | {"outputs": step.outputs, "attempts": step.attempts},
                    run=run)
