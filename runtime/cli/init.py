"""``aiosrun init [DIR]``: a new workspace that is also a playbook repository.

It holds ``aios.yaml`` (models on the offline ``replay`` provider, with the lines to switch
to a real endpoint), the template playbooks, example inputs for each, the cassettes their
model calls need, the JSON Schemas for editors, a sample ``knowledge/``, ``.gitignore``,
``.pre-commit-config.yaml``, and a git repository when git is installed. Files already
there are left alone, so ``init`` never destroys work.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
from aiosrun.runtime.cli.app import cli, fail

if TYPE_CHECKING:  # importlib.resources, shutil and subprocess cost every command 10 ms
    from importlib.resources.abc import Traversable

RENAMED = {"gitignore": ".gitignore", "pre-commit-config.yaml": ".pre-commit-config.yaml"}


def _files(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.startswith(("__", ".")):
            continue
        if entry.is_dir():
            yield from _files(entry, f"{prefix}{entry.name}/")
        else:
            yield prefix + RENAMED.get(entry.name, entry.name), entry


def starter_files() -> list[tuple[str, bytes]]:
    """(relative path, content) of everything a new workspace gets."""
    from importlib import resources

    out = [(name, entry.read_bytes())
           for name, entry in _files(resources.files("aiosrun.runtime") / "starter")]
    playbooks = resources.files("aiosrun.playbooks")
    out += [(f"playbooks/{entry.name}", entry.read_bytes())
            for entry in sorted(playbooks.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".yaml")]
    schemas = resources.files("aiosrun.schemas")
    out += [(f"schemas/{entry.name}", entry.read_bytes())
            for entry in sorted(schemas.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".json")]
    return out


@cli.command()
@click.argument("directory", default=".", type=click.Path(path_type=Path, file_okay=False))
@click.option("--no-git", is_flag=True, help="Do not create a git repository.")
def init(directory: Path, no_git: bool) -> None:
    """Create a workspace in DIRECTORY (default: here): aios.yaml, playbooks, examples,
    cassettes, schemas, knowledge, .gitignore, pre-commit, and a git repository."""
    if (directory / "aios.yaml").exists():
        fail(f"{directory / 'aios.yaml'} exists: {directory} is a workspace already")
    written, kept = [], []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, content in starter_files():
            target = directory / name
            if target.exists():
                kept.append(name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            written.append(name)
    except OSError as exc:
        where = exc.filename or directory
        fail(f"cannot create the workspace in {directory}: {where}: {exc.strerror or exc}"
             + (f" ({len(written)} files were written before)" if written else ""))
    import shutil
    import subprocess

    git = shutil.which("git")
    repository = ""
    if git and not no_git and not (directory / ".git").exists():
        done = subprocess.run([git, "init", "-q", str(directory)], capture_output=True,
                              text=True, check=False)
        repository = "; git repository created" if done.returncode == 0 else \
            f"; git init failed: {done.stderr.strip()}"
    click.echo(f"workspace created in {directory}: {len(written)} files{repository}")
    for name in kept:
        click.echo(f"  kept existing {name}")
    where = "" if directory.resolve() == Path.cwd().resolve() else f"cd {directory} && "
    click.echo("\nnext:\n"
               f"  {where}aiosrun apply\n"
               "  aiosrun run customer-onboarding --inputs examples/customer-onboarding.yaml\n"
               "  aiosrun approve            # the gate it stops at: approve the email\n"
               "  aiosrun timeline RUN       # what happened, with costs")
