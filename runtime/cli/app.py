"""The click group every command registers on, its shared :class:`Context` and ``fail``.

Commands import what they need inside their bodies, so ``aiosrun --version`` and ``--help``
stay fast and never load trio, tantivy, usearch, httpx or instructor.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
from aiosrun.runtime import __version__


class Context:
    """What every command may need: the workspace override, resolved lazily."""

    def __init__(self, workspace: str | None) -> None:
        self.workspace_override = workspace

    def workspace_path(self) -> Path:
        """The workspace folder, or the command ends with the reason there is none."""
        root = self.workspace()
        if root is None:
            fail("no workspace here: create aios.yaml (apiVersion: aiosrun/v1, kind: "
                 "Workspace) or pass --workspace DIR")
        return root

    def workspace(self) -> Path | None:
        from aiosrun.runtime.workspace import find_workspace

        return find_workspace(Path.cwd(), self.workspace_override)

    def catalog(self) -> dict[str, dict[str, object]]:
        """The actions of the installed adapters and of the workspace's own, for validate."""
        from aiosrun.runtime.registry import Registry

        return Registry.discover(self.workspace()).catalog()

    def model_aliases(self) -> list[str] | None:
        """The workspace's model aliases, for checking ``llm:`` steps (None: no check)."""
        root = self.workspace()
        if root is None:
            return None
        from aiosrun.dsl.errors import PlaybookError
        from aiosrun.dsl.loader import load_file

        try:
            models = load_file(root / "aios.yaml").data.get("models")
        except PlaybookError:
            return None  # validate reports the broken file itself
        return sorted(models) if isinstance(models, dict) else None

    def mcp_servers(self) -> list[str]:
        """The names of aios.yaml's ``mcp`` servers (none when it does not load)."""
        root = self.workspace()
        if root is None:
            return []
        from aiosrun.dsl.errors import PlaybookError
        from aiosrun.dsl.loader import load_file

        try:
            servers = load_file(root / "aios.yaml").data.get("mcp")
        except PlaybookError:
            return []
        return sorted(servers) if isinstance(servers, dict) else []

    def default_paths(self) -> list[Path]:
        """The workspace's ``aios.yaml``, ``playbooks/`` and ``tests/``, else the current
        folder."""
        root = self.workspace()
        if root is None:
            if self.workspace_override:
                fail(f"{self.workspace_override}: no aios.yaml there (from --workspace or "
                     "AIOS_WORKSPACE)")
            return [Path(".")]
        paths = [root / "aios.yaml"]
        for folder in ("playbooks", "agents", "tests"):
            if (root / folder).is_dir():
                paths.append(root / folder)
        return paths


def fail(message: str, code: int = 1) -> NoReturn:
    from aiosrun.runtime.cli.masking import masked  # a message may quote a secret's value

    positioned = ": error: " in message.split("\n", 1)[0]  # FILE:LINE:COL: error: ... already
    click.echo(masked(message if positioned else f"error: {message}"), err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aiosrun")
@click.option("--workspace", "-w", envvar="AIOS_WORKSPACE", metavar="DIR",
              help="The workspace folder (default: found from the current folder upwards).")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None) -> None:
    """aiosrun: playbooks that run a one-person company, durably and safely."""
    ctx.obj = Context(workspace)
