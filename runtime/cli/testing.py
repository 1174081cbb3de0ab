"""``aiosrun test``: run the workspace's playbook tests and report, like a test runner.

Registered on the group in :mod:`app`; the runner lives in :mod:`aiosrun.runtime.testing`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from aiosrun.runtime.cli.app import Context, cli


@cli.command("test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--junit", "junit_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the results as JUnit XML (one testcase per case).")
@click.option("-k", "select", metavar="NAME", help="Only the cases whose name contains NAME.")
@click.pass_obj
def test_command(obj: Context, paths: tuple[Path, ...], junit_file: Path | None,
                 select: str | None) -> None:
    """Run playbook tests (kind: Test files; default: the workspace's tests/*.yaml).

    Each case runs in a throwaway copy of the workspace on a virtual clock, with its mocks,
    model answers and decisions: nothing touches the real ledger, outbox, memory or log.
    Exit status: 0 when every case passed, 1 otherwise.
    """
    from aiosrun.dsl.errors import PlaybookError
    from aiosrun.runtime.testing.suite import junit, load_tests, run_tests, test_files

    root = obj.workspace_path()
    try:
        docs, playbooks = load_tests(root, test_files(root, paths))
    except PlaybookError as exc:
        for diagnostic in exc.diagnostics:
            click.echo(diagnostic.format())
        sys.exit(1)
    results = run_tests(root, docs, playbooks, select)
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        click.echo(f"{mark} {result.file}::{result.name} ({result.seconds * 1000:.0f} ms)")
        for line in result.failures:
            click.echo(f"  {line}")
    passed = sum(r.passed for r in results)
    if junit_file is not None:
        junit_file.write_text(junit(results), "utf-8")
    click.echo(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) and results else 1)
