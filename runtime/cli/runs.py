"""CLI commands about playbook versions and runs: apply, run, resume, runs, status, replay,
cancel, doctor. Each parses its arguments, calls the Engine and renders what it returns."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from aiosrun.runtime.cli.app import Context, cli
from aiosrun.runtime.cli.parsing import parse_inputs
from aiosrun.runtime.cli.render import (
    FORMAT,
    Progress,
    dump,
    exit_for,
    read_session,
    report,
    report_dispatched,
    session,
)

if TYPE_CHECKING:
    from aiosrun.runtime.engine import Engine

RUNS_SHOWN = 20  # `runs` lists the latest 20, as `gh run list` does


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Only print what would change.")
@click.pass_obj
def apply(obj: Context, paths: tuple[Path, ...], dry_run: bool) -> None:
    """Validate playbooks and install new or changed versions (like terraform apply).

    Without PATHS, applies the workspace's playbooks/ folder and removes applied playbooks
    whose file is gone. Runs in flight keep the version they started with.
    """
    from aiosrun.dsl.errors import PlaybookError

    async def work(engine: Engine) -> Any:
        try:
            return await engine.apply(list(paths), dry_run=dry_run)
        except PlaybookError as exc:
            return exc

    result = session(obj, work)
    if isinstance(result, PlaybookError):
        for diagnostic in result.diagnostics:
            click.echo(diagnostic.format())
        click.echo(f"{len(result.diagnostics)} error(s); nothing applied", err=True)
        sys.exit(1)
    for change in result.changes:
        click.echo(change.line())
    if dry_run:
        click.echo(f"Plan: {result.summary} (dry run: nothing recorded)")
    else:
        click.echo(f"Applied: {result.summary}")


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
    from aiosrun.dsl.errors import PlaybookError

    inputs = parse_inputs(pairs, inputs_file)

    async def work(engine: Engine) -> Any:
        engine.observers.append(Progress(quiet=fmt == "json"))
        try:
            started = await engine.start(target, inputs, wait=False)
        except PlaybookError as exc:
            return exc
        if fmt != "json":
            click.echo(f"run {started.id} started ({started.playbook} {started.version})",
                       err=True)
        final = await engine.wait(started.id)
        report_dispatched(engine, fmt)
        return final

    result = session(obj, work, record_models=record_models)
    if isinstance(result, PlaybookError):
        click.echo(str(result))
        sys.exit(1)
    report(result, fmt)
    exit_for(result)


@cli.command()
@click.argument("run_id", required=False)
@click.option("--all", "all_runs", is_flag=True, help="Every run a crash left unfinished.")
@FORMAT
@click.pass_obj
def resume(obj: Context, run_id: str | None, all_runs: bool, fmt: str) -> None:
    """Continue runs that a crash left behind; completed steps are not run again."""
    if bool(run_id) == all_runs:
        raise click.UsageError("give a RUN id or --all")

    async def work(engine: Engine) -> Any:
        engine.observers.append(Progress(quiet=fmt == "json"))
        if run_id is not None:
            result: Any = await engine.resume(run_id)
        else:
            result = await engine.resume()
        report_dispatched(engine, fmt)
        return result

    result = session(obj, work)
    if not all_runs:
        report(result, fmt)
        exit_for(result)
    if fmt == "json":
        dump([r.to_json() for r in result])
        return
    for resumed in result:
        click.echo(f"run {resumed.id} ({resumed.playbook}): {resumed.status}")
    click.echo(f"{len(result)} run(s) resumed", err=True)


@cli.command()
@click.option("--status", "status_filter", help="Only runs with this status.")
@click.option("-L", "--limit", default=RUNS_SHOWN, show_default=True, type=click.IntRange(1),
              help="How many of the latest runs to list.")
@click.option("--all", "all_runs", is_flag=True, help="List every run.")
@FORMAT
@click.pass_obj
def runs(obj: Context, status_filter: str | None, limit: int, all_runs: bool,
         fmt: str) -> None:
    """List the latest runs (20 unless --limit or --all), newest last."""
    from aiosrun.runtime import reading

    shown = None if all_runs else limit
    listed = read_session(obj, lambda ws: reading.runs(ws, status_filter, shown))
    if fmt == "json":
        click.echo(json.dumps([r.to_json() for r in listed], indent=2))
        return
    if listed:  # one write: a line at a time was most of what --all cost
        click.echo("\n".join(f"{r.id}  {r.playbook:30} {r.status:16} {r.started_at}"
                              for r in listed))


@cli.command()
@click.argument("run_id")
@FORMAT
@click.pass_obj
def status(obj: Context, run_id: str, fmt: str) -> None:
    """One run: status, steps, outputs, error."""
    from aiosrun.runtime import reading

    state = read_session(obj, lambda ws: reading.run(ws, run_id))
    if fmt == "json":
        dump(state.to_json())
        return
    click.echo(f"run {state.id}: {state.playbook} {state.version} — {state.status}")
    for step in state.steps:
        extra = f" ({step.error['class']}: {step.error['message']})" if step.error else ""
        click.echo(f"  {step.status:10} {step.path} attempts={step.attempts}{extra}")
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
    state = session(obj, lambda engine: engine.replay(run_id, at_seq))
    if fmt == "json":
        click.echo(json.dumps(state.to_json(), indent=2))
        return
    click.echo(f"run {state.id} at seq {state.last_seq}: {state.status}")
    for step in state.steps:
        click.echo(f"  {step.status:10} {step.path} attempts={step.attempts}")


@cli.command()
@click.argument("run_id")
@click.pass_obj
def cancel(obj: Context, run_id: str) -> None:
    """Stop a run and undo its completed steps (compensation)."""

    async def work(engine: Engine) -> Any:
        engine.observers.append(Progress(quiet=False))
        return await engine.cancel(run_id)

    final = session(obj, work)
    if not final.finished:
        click.echo(f"run {run_id}: cancel requested; the process running it stops at the "
                   "next step and compensates")
        return
    click.echo(f"run {run_id}: {final.status}")


@cli.command()
@click.option("--rebuild", is_flag=True, help="Rebuild the run index and all snapshots.")
@click.pass_obj
def doctor(obj: Context, rebuild: bool) -> None:
    """Check the event log end to end; with --rebuild, rebuild what is derived from it."""
    found = session(obj, lambda engine: engine.doctor(rebuild))
    if found.repaired:
        click.echo(found.repaired)
    where = "" if found.store == "jsonl" else f" ({found.store})"
    click.echo(f"event log{where}: {found.records} records, seq 1..{found.last_seq}, "
               "checksums ok")
    if found.rebuilt_runs is not None:
        click.echo(f"rebuilt the run index ({found.rebuilt_runs} runs) and the snapshots")


@cli.command()
@click.option("--to", "url", required=True, metavar="URL",
              help="The empty PostgreSQL database, postgresql://USER@HOST:PORT/DB "
                   "(the password from PGPASSWORD).")
@click.pass_obj
def migrate(obj: Context, url: str) -> None:
    """Copy this workspace's JSONL state (log, run index, snapshots, effects ledgers) into
    PostgreSQL and verify it; then name the database in aios.yaml (store: {url: ...})."""
    done = session(obj, lambda engine: engine.migrate(url))
    click.echo(f"copied {done.records} records ({done.runs} runs), {done.snapshots} "
               f"snapshots and {done.journal_entries} ledger entries to {done.url}; verified")
    click.echo(f'next: add  store: {{url: "{done.url}"}}  to aios.yaml (a password as '
               "store.password: ${{ secrets.NAME }})")


@cli.command()
@click.argument("run_id")
@click.option("--from", "from_step", metavar="STEP",
              help="Reuse the steps before this one (a step at the run's top level).")
@click.option("--at", "at_seq", type=int, metavar="SEQ",
              help="Reuse the steps the run had completed by this seq.")
@FORMAT
@click.pass_obj
def fork(obj: Context, run_id: str, from_step: str | None, at_seq: int | None,
         fmt: str) -> None:
    """Start a new run of the playbook's current version that takes the first steps of
    RUN, outputs and all, without executing them again; RUN is left as it was.

    Try a fix on yesterday's failure without redoing its effects. Exit status as `run`.
    """
    if (from_step is None) == (at_seq is None):
        raise click.UsageError("give --from STEP or --at SEQ")

    async def work(engine: Engine) -> Any:
        engine.observers.append(Progress(quiet=fmt == "json"))
        result = await engine.fork(run_id, from_step=from_step, at_seq=at_seq)
        report_dispatched(engine, fmt)
        return result

    final = session(obj, work)
    if fmt != "json":
        click.echo(f"forked {run_id} as run {final.id}", err=True)
    report(final, fmt)
    exit_for(final)
