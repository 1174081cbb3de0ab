"""Tooling commands that need no event log: validate, fmt, schema, adapters, eval.

Registered on the group in :mod:`app`; heavy imports stay inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

import click
from aiosrun.runtime.cli.app import Context, cli, fail


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
    catalog = obj.catalog()
    root = obj.workspace()
    known = []
    if paths and root is not None and (root / "playbooks").is_dir():  # tests name these
        known = validate_files(collect_files([root / "playbooks"])[0], catalog=catalog,
                               agents_folder=root / "agents").playbooks
    result = validate_files(files, display_root=Path.cwd(), catalog=catalog,
                            models=obj.model_aliases(), known_playbooks=known,
                            agents_folder=root / "agents" if root is not None else None,
                            mcp_servers=obj.mcp_servers())
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
@click.argument("name", type=click.Choice(["playbook", "workspace", "test"]),
                default="playbook")
def schema(name: Literal["playbook", "workspace", "test"]) -> None:
    """Print the JSON Schema of playbooks, of aios.yaml or of playbook tests (for editors)."""
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
    from aiosrun.runtime.registry import Registry

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
