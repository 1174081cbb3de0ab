"""The ``aiosrun`` command line: the composition root that wires ``dsl`` and ``runtime``.

Commands import what they need inside their bodies, so ``aiosrun --version`` and ``--help``
stay fast and never load trio, tantivy, usearch, httpx or instructor. Every user error ends as
one positioned line and exit status 1; wrong usage is click's message and exit status 2.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Literal, NoReturn

import click

from . import __version__


class Context:
    """What every command may need: the workspace override, resolved lazily."""

    def __init__(self, workspace: str | None) -> None:
        self.workspace_override = workspace

    def workspace(self) -> Path | None:
        from .workspace import find_workspace

        return find_workspace(Path.cwd(), self.workspace_override)

    def catalog(self) -> dict[str, dict[str, object]]:
        """The actions of the installed adapters and of the workspace's own, for validate."""
        from .registry import Registry

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

    def default_paths(self) -> list[Path]:
        """The workspace's ``aios.yaml`` and ``playbooks/``, else the current folder."""
        root = self.workspace()
        if root is None:
            if self.workspace_override:
                fail(f"{self.workspace_override}: no aios.yaml there (from --workspace or "
                     "AIOS_WORKSPACE)")
            return [Path(".")]
        paths = [root / "aios.yaml"]
        if (root / "playbooks").is_dir():
            paths.append(root / "playbooks")
        return paths


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aiosrun")
@click.option("--workspace", "-w", envvar="AIOS_WORKSPACE", metavar="DIR",
              help="The workspace folder (default: found from the current folder upwards).")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None) -> None:
    """aiosrun: playbooks that run a one-person company, durably and safely."""
    ctx.obj = Context(workspace)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@click.pass_obj
def validate(obj: Context, paths: tuple[Path, ...], fmt: str) -> None:
    """Check playbooks and aios.yaml: schema, semantics, expressions.

    PATHS are files or folders (default: the workspace's aios.yaml and playbooks/, or the
    current folder). Prints FILE:LINE:COL: error: MESSAGE per problem; exits 1 if any.
    """
    from aiosrun.dsl.validate import collect_files, validate_files

    files, missing = collect_files(list(paths) or obj.default_paths())
    result = validate_files(files, display_root=Path.cwd(), catalog=obj.catalog(),
                            models=obj.model_aliases())
    diagnostics = sorted(missing + result.diagnostics)
    if fmt == "json":
        click.echo(json.dumps([d.to_json() for d in diagnostics], indent=2))
    else:
        for diagnostic in diagnostics:
            click.echo(diagnostic.format())
        errors = sum(d.severity == "error" for d in diagnostics)
        broken = len({d.file for d in diagnostics})
        if errors:
            click.echo(f"{errors} error{'s' * (errors != 1)} in {broken} "
                       f"file{'s' * (broken != 1)} ({len(files)} checked)", err=True)
        else:
            click.echo(f"{len(files)} file{'s' * (len(files) != 1)} valid", err=True)
    sys.exit(1 if diagnostics else 0)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--check", is_flag=True, help="Change nothing; exit 1 when a file would change.")
@click.pass_obj
def fmt(obj: Context, paths: tuple[Path, ...], check: bool) -> None:
    """Format playbooks canonically, keeping comments (like terraform fmt)."""
    from aiosrun.dsl.diagnostics import Diagnostic
    from aiosrun.dsl.errors import PlaybookError
    from aiosrun.dsl.fmt import format_text
    from aiosrun.dsl.loader import load_file
    from aiosrun.dsl.validate import collect_files

    files, problems = collect_files(list(paths) or obj.default_paths())
    changed: list[Path] = []
    for path in files:
        try:
            original = load_file(path).text
            formatted = format_text(original, str(path))
        except PlaybookError as exc:
            problems.extend(exc.diagnostics)
            continue
        if formatted != original:
            changed.append(path)
            if not check:
                path.write_text(formatted, encoding="utf-8")
    for diagnostic in sorted(problems):
        click.echo(Diagnostic.format(diagnostic))
    verb = "would reformat" if check else "reformatted"
    for path in changed:
        click.echo(f"{verb} {path}", err=True)
    click.echo(f"{len(changed)} of {len(files)} file{'s' * (len(files) != 1)} {verb}", err=True)
    sys.exit(1 if problems or (check and changed) else 0)


@cli.command()
@click.argument("name", type=click.Choice(["playbook", "workspace"]), default="playbook")
def schema(name: Literal["playbook", "workspace"]) -> None:
    """Print the JSON Schema of playbooks or of aios.yaml (for editors and tools)."""
    from aiosrun.dsl.schema import schema_text

    click.echo(schema_text(name), nl=False)


@cli.command()
@click.argument("name", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@click.pass_obj
def adapters(obj: Context, name: str | None, fmt: str) -> None:
    """List the adapters (built-in and the workspace's own) with their actions; with NAME,
    one adapter's actions and argument schemas."""
    from .registry import Registry

    registry = Registry.discover(obj.workspace())
    chosen = sorted(registry.adapters.items())
    if name is not None:
        if name not in registry.adapters:
            fail(f"no adapter '{name}' (installed: {', '.join(sorted(registry.adapters))})")
        chosen = [(name, registry.adapters[name])]
    listing: dict[str, dict[str, Any]] = {
        adapter_name: {"description": adapter.description, "actions": {
            action_name: {"description": action.description, "args": dict(action.args),
                          **({"compensation": f"{adapter_name}.{action.compensation}"}
                             if action.compensation else {})}
            for action_name, action in sorted(adapter.actions.items())}}
        for adapter_name, adapter in chosen}
    if fmt == "json":
        click.echo(json.dumps(listing, indent=2))
        return
    for adapter_name, info in listing.items():
        click.echo(f"{adapter_name}: {info['description']}")
        for action_name, action in info["actions"].items():
            args = action["args"].get("properties", {})
            required = set(action["args"].get("required", []))
            shown = ", ".join(f"{a}{'' if a in required else '?'}" for a in args)
            undo = f"  (undone by {action['compensation']})" if "compensation" in action else ""
            click.echo(f"  {adapter_name}.{action_name}({shown}){undo}")
            click.echo(f"      {action['description']}")
            if name is not None:
                for line in json.dumps(action["args"], indent=2).splitlines():
                    click.echo(f"      {line}")


@cli.command("eval")
@click.argument("expression")
@click.option("--contexts", "contexts_file", type=click.Path(path_type=Path, dir_okay=False),
              help="JSON or YAML file: a mapping of context name -> value.")
def eval_command(expression: str, contexts_file: Path | None) -> None:
    """Evaluate an expression and print the result as JSON.

    EXPRESSION is a bare expression (steps.a.outputs.x == 1) or text with ${{ }} inside, which
    is rendered as a playbook scalar would be. Exits 1 with the position of any error.
    """
    from aiosrun.dsl.errors import ExpressionError, PlaybookError
    from aiosrun.dsl.expressions import evaluate
    from aiosrun.dsl.loader import load_file
    from aiosrun.dsl.render import render_template
    from aiosrun.dsl.templates import TemplateSyntaxError

    contexts: dict[str, object] = {}
    if contexts_file is not None:
        try:
            contexts = load_file(contexts_file).data
        except PlaybookError as exc:
            fail(str(exc))
    try:
        if "${{" in expression:
            result = render_template(expression, contexts)
        else:
            result = evaluate(expression, contexts)
    except ExpressionError as exc:
        offset = exc.position
        if "${{" in expression:
            offset = expression.find(exc.expression) + exc.position
        shown = expression if "${{" in expression else exc.expression
        click.echo(f"error: {exc}", err=True)
        click.echo(f"  {shown}\n  {' ' * offset}^", err=True)
        sys.exit(1)
    except TemplateSyntaxError as exc:
        click.echo(f"error: {exc}\n  {expression}\n  {' ' * exc.offset}^", err=True)
        sys.exit(1)
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))


def main() -> None:
    """Entry point: user errors never surface as tracebacks."""
    from . import (  # noqa: F401  (they register their commands on the group)
        cli_events,
        cli_init,
        cli_memory,
        cli_operator,
        cli_plan,
        cli_runs,
        cli_timeline,
    )

    try:
        cli.main(prog_name="aiosrun", standalone_mode=True)
    except Exception as exc:
        from aiosrun.dsl.errors import AiosrunError  # here, not at start-up: keeps it cold

        if isinstance(exc, AiosrunError):
            click.echo(str(exc), err=True)
            sys.exit(1)
        if os.environ.get("AIOS_DEBUG"):  # a bug: brief by default, traceback on request
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} "
                   "(set AIOS_DEBUG=1 to see where)", err=True)
        sys.exit(1)
