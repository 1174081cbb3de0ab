"""CLI commands about playbook versions and runs: apply, run, resume, runs, status, timeline,
replay, cancel, doctor. Registered on the group in :mod:`cli`; heavy imports stay inside."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from aiosrun.runtime.cli.app import Context, cli, fail

EXIT = {"succeeded": 0, "waiting": 3, "running": 1, "failed": 1, "compensated": 1,
        "cancelled": 1, "needs_attention": 1}


def open_workspace(obj: Context) -> Any:
    from aiosrun.runtime.workspace import Workspace

    root = obj.workspace()
    if root is None:
        fail("no workspace here: create aios.yaml (apiVersion: aiosrun/v1, kind: Workspace) "
             "or pass --workspace DIR")
    ws = Workspace(root)
    if ws.log.repaired:
        click.echo(f"warning: {ws.log.repaired}", err=True)
    return ws


def run_object(state: Any) -> dict[str, Any]:
    """The run as DESIGN §7 describes it for --format json."""
    return {
        "id": state.id,
        "playbook": state.playbook,
        "version": state.digest[:12],
        "status": state.status,
        "steps": [{"id": s.id, "path": s.path, "status": s.status, "attempts": s.attempts,
                   "outputs": s.outputs, **({"error": s.error} if s.error else {})}
                  for s in (state.steps[p] for p in state.order)],
        "outputs": state.outputs,
        "error": state.error,
        "cost_usd": state.cost_usd,
        "waiting": state.waiting_for(),
        "parent": state.parent,
        "started_at": state.started_at,
        "finished_at": state.finished_at,
    }


def git_commit(root: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Only print what would change.")
@click.pass_obj
def apply(obj: Context, paths: tuple[Path, ...], dry_run: bool) -> None:
    """Validate playbooks and install new or changed versions (like terraform apply).

    Without PATHS, applies the workspace's playbooks/ folder and removes applied playbooks
    whose file is gone. Runs in flight keep the version they started with.
    """
    from aiosrun.dsl.ir_codec import encode
    from aiosrun.dsl.validate import collect_files, validate_files
    from aiosrun.runtime.log.eventlog import NewEvent

    ws = open_workspace(obj)
    with ws:
        whole = not paths
        files, missing = collect_files(list(paths) or [ws.root / "playbooks"])
        result = validate_files(files, display_root=Path.cwd(), catalog=ws.registry.catalog(),
                                models=list(ws.settings.data.get("models") or {}))
        problems = sorted(missing + result.diagnostics)
        for diagnostic in problems:
            click.echo(diagnostic.format())
        if problems:
            click.echo(f"{len(problems)} error(s); nothing applied", err=True)
            sys.exit(1)
        state = ws.workspace_state()
        commit = git_commit(ws.root)
        events = []
        lines = []
        seen = set()
        for playbook in sorted(result.playbooks, key=lambda p: p.name):
            seen.add(playbook.name)
            current = state.current.get(playbook.name)
            if current == playbook.digest:
                lines.append(f"  = {playbook.name} (unchanged, {playbook.digest[:12]})")
                continue
            sign, what = ("+", "new") if current is None else ("~", f"{current[:12]} ->")
            lines.append(f"  {sign} {playbook.name} ({what} {playbook.digest[:12]})")
            events.append(NewEvent("PlaybookApplied", {
                "name": playbook.name, "digest": playbook.digest, "source": playbook.source,
                "commit": commit, "ir": encode(playbook)}))
        if whole:
            for name in sorted(set(state.current) - seen):
                lines.append(f"  - {name} (removed: no file defines it)")
                events.append(NewEvent("PlaybookRemoved", {"name": name}))
        for line in lines:
            click.echo(line)
        added = sum(e.type == "PlaybookApplied" for e in events)
        removed = sum(e.type == "PlaybookRemoved" for e in events)
        summary = f"{added} to apply, {removed} to remove, {len(lines) - len(events)} unchanged"
        if dry_run:
            click.echo(f"Plan: {summary} (dry run: nothing recorded)")
            return
        if events:
            ws.log.append_many(events)
            ws.log.sync()
            ws.save_workspace_snapshot()
        click.echo(f"Applied: {summary}")


def parse_inputs(pairs: tuple[str, ...], inputs_file: Path | None) -> dict[str, Any]:
    from aiosrun.dsl.errors import PlaybookError
    from aiosrun.dsl.loader import load_file

    values: dict[str, Any] = {}
    if inputs_file is not None:
        try:
            values = load_file(inputs_file).data
        except PlaybookError as exc:  # already "FILE:LINE:COL: error: ..."
            click.echo(str(exc), err=True)
            sys.exit(1)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="-i")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        target = values
        *parents, last = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return values


class Progress:
    """One line per step as it ends, on stderr (stdout stays for results)."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.quiet = quiet

    def __call__(self, record: Any, state: Any) -> None:
        if self.quiet:
            return
        data = record.data
        marks = {"StepSucceeded": "[green]✓[/]", "StepFailed": "[red]✗[/]",
                 "StepSkipped": "[dim]-[/]", "StepCancelled": "[yellow]⊘[/]",
                 "StepAttemptFailed": "[yellow]↻[/]", "CompensationSucceeded": "[cyan]↶[/]",
                 "CompensationFailed": "[red]↶✗[/]", "ModelCalled": "[blue]⋯[/]"}
        mark = marks.get(record.type)
        if mark is None:
            return
        line = f"{mark} {data.get('path', '')}"
        if record.type == "StepAttemptFailed":
            line += (f" attempt {data.get('attempt')} failed ({data.get('error_class')}: "
                     f"{data.get('message')})")
            line += ("; handed to the operator" if data.get("escalated")
                     else f"; retrying in {float(data.get('retry_in') or 0):.2f}s")
        elif record.type == "StepFailed":
            line += f" failed: {data['error_class']}: {data['message']}"
        elif record.type == "StepSkipped":
            line += " skipped"
        elif record.type == "ModelCalled":
            from aiosrun.runtime.cli.timeline import describe_model_call

            line += f" {describe_model_call(data)}"
        elif record.type.startswith("Compensation"):
            line += " compensated" if record.type.endswith("Succeeded") else " compensation failed"
        self.console.print(line, soft_wrap=True)


def serve_running(ws: Any) -> bool:
    """Whether `aiosrun serve` holds the workspace (then it dispatches events and timers)."""
    import fcntl
    import os

    path = ws.state_dir / "serve.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def dispatch_events(ws: Any, fmt: str) -> list[Any]:
    """Dispatch what runs emitted, here, unless serve is running (then serve does it)."""
    import trio
    from aiosrun.runtime.coordinator.dispatch import dispatch

    if serve_running(ws) or not ws.workspace_state().pending_events:
        return []
    started = trio.run(dispatch, ws, Progress(quiet=fmt == "json"))
    if fmt != "json":
        for state in started:
            click.echo(f"event: run {state.id} ({state.playbook}): {state.status}", err=True)
    return started


def execute(ws: Any, playbook: Any, state: Any, fmt: str) -> None:
    import trio
    from aiosrun.runtime.coordinator.interpreter import Runner
    from aiosrun.runtime.coordinator.leases import Lease

    lease = Lease(ws.state_dir / "runs", state.id)
    if not lease.try_acquire():
        fail(f"run {state.id} is being executed by another aiosrun process")
    try:
        progress = Progress(quiet=fmt == "json")
        final = trio.run(Runner(ws, playbook, state, progress).execute)
    finally:
        lease.release()
    dispatch_events(ws, fmt)
    ws.save_workspace_snapshot()
    report(final, fmt)
    sys.exit(EXIT.get(final.status, 1))


def settle_hint(run_id: str, waiting: dict[str, Any]) -> list[str]:
    """The commands that settle what a run waits for."""
    if waiting["via"] == "approve":
        gate = waiting["id"]
        hints = [f"aiosrun approve {run_id} {gate} [--comment TEXT]",
                 f"aiosrun reject {run_id} {gate} [--comment TEXT]"]
        if waiting["kind"] == "escalation":  # its timeout passed: ask again, or settle it
            hints.append(f"aiosrun resolve {run_id} {gate} --retry|--skip|--abort")
        return hints
    step = waiting["step"]
    return [f"aiosrun resolve {run_id} {step} --retry",
            f"aiosrun resolve {run_id} {step} --skip [--outputs JSON]",
            f"aiosrun resolve {run_id} {step} --abort"]


def show_waiting(state: Any) -> None:
    from rich.console import Console
    from rich.panel import Panel

    waiting = state.waiting_for()
    if waiting is None:
        return
    console = Console(stderr=True, highlight=False)
    body = waiting["message"]
    if waiting.get("show") is not None:
        body += "\n\n" + json.dumps(waiting["show"], indent=2, ensure_ascii=False)
    if waiting.get("args") is not None:
        body += "\n\narguments: " + json.dumps(waiting["args"], ensure_ascii=False)
    title = f"{waiting['kind']} {waiting['id']}"
    console.print(Panel(body, title=title, expand=False))
    for line in settle_hint(state.id, waiting):
        console.print(f"  {line}", soft_wrap=True)


def report(state: Any, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(run_object(state), indent=2, ensure_ascii=False))
        return
    click.echo(f"run {state.id} ({state.playbook}): {state.status}")
    if state.status == "waiting":
        show_waiting(state)
    if state.outputs:
        click.echo(json.dumps(state.outputs, indent=2, ensure_ascii=False))
    if state.error:
        click.echo(f"error: {state.error.get('message', state.error)}")


FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                      show_default=True, help="Output format.")


@cli.command()
@click.argument("target")
@click.option("-i", "--input", "pairs", multiple=True, metavar="KEY=VALUE",
              help="An input (JSON if it parses, else text); dots make nested keys.")
@click.option("--inputs", "inputs_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A JSON or YAML file of inputs.")
@click.option("--record", "record_models", is_flag=True,
              help="Record real model answers into the aliases' cassettes (for `replay`).")
@FORMAT
@click.pass_obj
def run(obj: Context, target: str, pairs: tuple[str, ...], inputs_file: Path | None,
        record_models: bool, fmt: str) -> None:
    """Start a run of an applied playbook (NAME) or of a playbook file (FILE).

    With --record, every real model call is also written to its alias's cassette, and a
    `replay` alias with a base_url asks the endpoint for what its cassette lacks (the
    environment variable AIOS_RECORD=1 does the same for any command that continues a run).

    Exit status: 0 succeeded, 3 waiting, 1 failed or compensated.
    """
    from aiosrun.adapters.base import PermanentError
    from aiosrun.dsl.errors import PlaybookError
    from aiosrun.dsl.ir_codec import encode
    from aiosrun.dsl.loader import load_file
    from aiosrun.dsl.validate import validate_document
    from aiosrun.runtime.coordinator.runs import start_or_load
    from aiosrun.runtime.log.eventlog import NewEvent
    from aiosrun.runtime.log.projections import Version

    inputs = parse_inputs(pairs, inputs_file)
    ws = open_workspace(obj)
    ws.record_models = ws.record_models or record_models
    with ws:
        version = None
        path = Path(target)
        if path.suffix in (".yaml", ".yml") and path.is_file():
            try:
                playbook = validate_document(load_file(path), ws.registry.catalog(),
                                             list(ws.settings.data.get("models") or {}))
            except PlaybookError as exc:
                click.echo(str(exc))
                sys.exit(1)
            state = ws.workspace_state()
            if playbook.digest not in state.versions:
                record = ws.log.append(NewEvent("PlaybookVersionRecorded", {
                    "name": playbook.name, "digest": playbook.digest, "source": str(path),
                    "commit": git_commit(ws.root), "ir": encode(playbook)}))
                version = Version(playbook.name, playbook.digest, str(path), None, record.seq,
                                  encode(playbook))
            else:
                version = state.versions[playbook.digest]
        try:
            playbook, state = start_or_load(ws, target, inputs, version=version)
        except PermanentError as exc:
            fail(str(exc))
        if fmt != "json":
            click.echo(f"run {state.id} started ({playbook.name} {playbook.digest[:12]})",
                       err=True)
        execute(ws, playbook, state, fmt)


@cli.command()
@click.argument("run_id", required=False)
@click.option("--all", "all_runs", is_flag=True, help="Every run a crash left unfinished.")
@FORMAT
@click.pass_obj
def resume(obj: Context, run_id: str | None, all_runs: bool, fmt: str) -> None:
    """Continue runs that a crash left behind; completed steps are not run again."""
    import functools

    import trio
    from aiosrun.runtime.coordinator.execution import execute_run

    if bool(run_id) == all_runs:
        raise click.UsageError("give a RUN id or --all")
    ws = open_workspace(obj)
    with ws:
        state = ws.workspace_state()
        if run_id is not None and run_id not in state.runs:
            fail(f"no run '{run_id}'")
        ids = [run_id] if run_id else [
            r.id for r in state.runs.values()
            if r.parent is None and r.status in ("running", "failed", "waiting")]
        results = []
        from aiosrun.runtime import clock
        from aiosrun.runtime.coordinator.dispatch import due_timers

        now = clock.now()
        for rid in ids:
            run_state = ws.run_state(rid)
            if run_state.finished or (all_runs and run_state.status == "waiting"
                                      and not due_timers(run_state, now)):
                if not all_runs:
                    results.append(run_state)
                continue
            final = trio.run(functools.partial(  # an exception fails that run alone
                execute_run, ws, None, run_state, on_record=Progress(quiet=fmt == "json")))
            if final is None:
                click.echo(f"run {rid} is being executed by another process; skipped", err=True)
                continue
            results.append(final)
        results += dispatch_events(ws, fmt)
        ws.save_workspace_snapshot()
        if all_runs:
            if fmt == "json":
                click.echo(json.dumps([run_object(s) for s in results], indent=2))
            else:
                for s in results:
                    click.echo(f"run {s.id} ({s.playbook}): {s.status}")
                click.echo(f"{len(results)} run(s) resumed", err=True)
            return
        if not results:
            sys.exit(1)
        report(results[0], fmt)
        sys.exit(EXIT.get(results[0].status, 1))


def continue_run(ws: Any, state: Any, fmt: str) -> None:
    """Execute a run that a decision or resolution unblocked, in this command."""

    playbook = ws.playbook(state.digest)
    execute(ws, playbook, state, fmt)


@cli.command()
@click.option("--status", "status_filter", help="Only runs with this status.")
@FORMAT
@click.pass_obj
def runs(obj: Context, status_filter: str | None, fmt: str) -> None:
    """List runs, newest last."""
    ws = open_workspace(obj)
    with ws:
        listed = [r for r in ws.workspace_state().runs.values()
                  if status_filter is None or r.status == status_filter]
    if fmt == "json":
        click.echo(json.dumps([{"id": r.id, "playbook": r.playbook, "status": r.status,
                                "started_at": r.started_at} for r in listed], indent=2))
        return
    for r in listed:
        click.echo(f"{r.id}  {r.playbook:30} {r.status:16} {r.started_at}")


def _load_run(ws: Any, run_id: str, until: int | None = None) -> Any:
    if run_id not in ws.workspace_state().runs:
        fail(f"no run '{run_id}'")
    return ws.run_state(run_id, until)


@cli.command()
@click.argument("run_id")
@FORMAT
@click.pass_obj
def status(obj: Context, run_id: str, fmt: str) -> None:
    """One run: status, steps, outputs, error."""
    ws = open_workspace(obj)
    with ws:
        state = _load_run(ws, run_id)
    if fmt == "json":
        click.echo(json.dumps(run_object(state), indent=2, ensure_ascii=False))
        return
    click.echo(f"run {state.id}: {state.playbook} {state.digest[:12]} — {state.status}")
    for path in state.order:
        step = state.steps[path]
        extra = f" ({step.error['class']}: {step.error['message']})" if step.error else ""
        click.echo(f"  {step.status:10} {path} attempts={step.attempts}{extra}")
    for path, outcome in state.compensations.items():
        click.echo(f"  compensation {outcome:10} {path}")
    if state.outputs is not None:
        click.echo("outputs: " + json.dumps(state.outputs, ensure_ascii=False))


@cli.command()
@click.argument("run_id")
@click.option("--at", "at_seq", type=int, help="Rebuild the state as it was at this seq.")
@FORMAT
@click.pass_obj
def replay(obj: Context, run_id: str, at_seq: int | None, fmt: str) -> None:
    """Rebuild a run's state from the log, now or at any point of its history."""
    ws = open_workspace(obj)
    with ws:
        state = _load_run(ws, run_id, at_seq if at_seq is not None else 10**18)
    if fmt == "json":
        click.echo(json.dumps(run_object(state) | {"seq": state.last_seq}, indent=2))
        return
    click.echo(f"run {state.id} at seq {state.last_seq}: {state.status}")
    for path in state.order:
        step = state.steps[path]
        click.echo(f"  {step.status:10} {path} attempts={step.attempts}")


@cli.command()
@click.argument("run_id")
@click.pass_obj
def cancel(obj: Context, run_id: str) -> None:
    """Stop a run and undo its completed steps (compensation)."""
    import trio
    from aiosrun.runtime.coordinator.interpreter import Runner
    from aiosrun.runtime.coordinator.leases import Lease
    from aiosrun.runtime.log.eventlog import NewEvent
    from aiosrun.runtime.log.projections import apply_run

    ws = open_workspace(obj)
    with ws:
        state = _load_run(ws, run_id)
        if state.finished:
            fail(f"run {run_id} has already ended ({state.status})")
        record = ws.log.append(NewEvent("RunCancelRequested", {}, run=run_id))
        apply_run(state, record)
        lease = Lease(ws.state_dir / "runs", run_id)
        if not lease.try_acquire():
            click.echo(f"run {run_id}: cancel requested; the process running it stops at the "
                       "next step and compensates")
            return
        try:
            playbook = ws.playbook(state.digest)
            runner = Runner(ws, playbook, state, Progress(quiet=False))
            final = trio.run(runner.execute)
        finally:
            lease.release()
        ws.save_workspace_snapshot()
        click.echo(f"run {run_id}: {final.status}")


@cli.command()
@click.option("--rebuild", is_flag=True, help="Rebuild the run index and all snapshots.")
@click.pass_obj
def doctor(obj: Context, rebuild: bool) -> None:
    """Check the event log end to end; with --rebuild, rebuild what is derived from it."""
    import shutil

    ws = open_workspace(obj)
    with ws:
        if ws.log.repaired:
            click.echo(ws.log.repaired)
        count = sum(1 for _ in ws.log.read())
        click.echo(f"event log: {count} records, seq 1..{ws.log.last_seq}, checksums ok")
        if rebuild:
            shutil.rmtree(ws.snapshots, ignore_errors=True)
            runs_count = ws.log.rebuild_index()
            ws.save_workspace_snapshot()
            for run_id in ws.workspace_state().runs:
                ws.save_run_snapshot(ws.run_state(run_id))
            click.echo(f"rebuilt the run index ({runs_count} runs) and the snapshots")
