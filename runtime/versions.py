"""Playbook versions: what ``apply`` records, and the version a run from a file pins.

A version is the compiled IR of one playbook text (its content hash is the digest), recorded
once in the log with the git commit it came from. ``apply`` records new and changed versions
as current and removes playbooks whose file is gone; a run pins its version at start.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from aiosrun.dsl.errors import PlaybookError
from aiosrun.runtime.log.eventlog import NewEvent
from aiosrun.runtime.log.projections import Version
from aiosrun.runtime.results import Change
from aiosrun.runtime.workspace import Workspace


def git_commit(root: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def plan_apply(ws: Workspace, paths: Sequence[Path] | None,
               display_root: Path) -> tuple[list[Change], list[NewEvent]]:
    """Validate the playbooks (raises :class:`PlaybookError` with every problem) and work
    out what ``apply`` changes: the plan lines and the records that make it so."""
    from aiosrun.dsl.ir_codec import encode
    from aiosrun.dsl.validate import collect_files, validate_files

    whole = not paths
    files, missing = collect_files(list(paths or []) or [ws.root / "playbooks"])
    result = validate_files(files, display_root=display_root, catalog=ws.registry.catalog(),
                            models=list(ws.settings.data.get("models") or {}),
                            agents_folder=ws.root / "agents",
                            mcp_servers=list(ws.settings.data.get("mcp") or {}))
    problems = sorted(missing + result.diagnostics)
    if problems:
        raise PlaybookError(problems)
    state = ws.workspace_state()
    commit = git_commit(ws.root)
    changes: list[Change] = []
    events: list[NewEvent] = []
    seen = set()
    for playbook in sorted(result.playbooks, key=lambda p: p.name):
        seen.add(playbook.name)
        current = state.current.get(playbook.name)
        if current == playbook.digest:
            changes.append(Change("=", playbook.name, playbook.digest, current))
            continue
        changes.append(Change("+" if current is None else "~", playbook.name,
                              playbook.digest, current))
        events.append(NewEvent("PlaybookApplied", {
            "name": playbook.name, "digest": playbook.digest, "source": playbook.source,
            "commit": commit, "ir": encode(playbook)}))
    if whole:
        for name in sorted(set(state.current) - seen):
            changes.append(Change("-", name, None, state.current[name]))
            events.append(NewEvent("PlaybookRemoved", {"name": name}))
    return changes, events


def file_version(ws: Workspace, path: Path) -> Version:
    """The version of a playbook file run without ``apply`` (recorded if it is new)."""
    from aiosrun.dsl.ir_codec import encode
    from aiosrun.dsl.loader import load_file
    from aiosrun.dsl.validate import validate_document

    playbook = validate_document(load_file(path), ws.registry.catalog(),
                                 list(ws.settings.data.get("models") or {}),
                                 ws.root / "agents", list(ws.settings.data.get("mcp") or {}))
    state = ws.workspace_state()
    if playbook.digest in state.versions:
        known: Version = state.versions[playbook.digest]
        return known
    encoded = encode(playbook)
    record = ws.log.append(NewEvent("PlaybookVersionRecorded", {
        "name": playbook.name, "digest": playbook.digest, "source": str(path),
        "commit": git_commit(ws.root), "ir": encoded}))
    return Version(playbook.name, playbook.digest, str(path), None, record.seq, encoded)
