"""``aiosrun mcp``: the workspace's MCP servers (``tools``) and the workspace as one
(``serve``), both through the Engine."""

from __future__ import annotations

import click
from aiosrun.runtime.cli.app import Context, cli
from aiosrun.runtime.cli.render import FORMAT, dump, session


@cli.group()
def mcp() -> None:
    """Model Context Protocol: the servers of aios.yaml, and the workspace as a server."""


@mcp.command()
@click.argument("name")
@FORMAT
@click.pass_obj
def tools(obj: Context, name: str, fmt: str) -> None:
    """Ask the MCP server NAME for its tools, print them and cache their schemas, so
    `validate` checks `uses: NAME.TOOL` arguments offline."""
    listed = session(obj, lambda engine: engine.mcp_tools(name))
    if fmt == "json":
        dump(listed)
        return
    for tool in listed:
        schema = tool.get("input_schema") or {}
        required = set(schema.get("required") or ())
        args = ", ".join(f"{a}{'' if a in required else '?'}"
                         for a in (schema.get("properties") or {}))
        click.echo(f"{name}.{tool['name']}({args})")
        if tool.get("description"):
            click.echo(f"    {tool['description']}")
    click.echo(f"{len(listed)} tool{'s' * (len(listed) != 1)} cached for validate", err=True)


@mcp.command()
@click.pass_obj
def serve(obj: Context) -> None:
    """Serve the workspace to MCP clients over stdio: list playbooks, start and read runs,
    the inbox, memory search, emit events (and decide gates with server.mcp.decisions)."""
    from aiosrun.runtime.mcp.server import serve_stdio

    serve_stdio(obj.workspace_path())
