"""``aiosrun token``: create an API token for the HTTP server, in the workspace's ``.env``.

The value goes to ``.env`` only (created private, git-ignored by ``aiosrun init``); what is
printed is the secret reference for ``server.tokens`` and how a client reads the token,
never the token itself. ``aios.yaml`` is left as the operator wrote it: the command says
which lines to add when the reference is not listed yet.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import click
from aiosrun.runtime.cli.app import Context, cli, fail

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@cli.command("token")
@click.argument("name", default="AIOS_API_TOKEN")
@click.pass_obj
def token_command(obj: Context, name: str) -> None:
    """Create a random API token named NAME (default AIOS_API_TOKEN) in the workspace's .env
    and print how to use it; the token itself is not printed."""
    if not NAME.fullmatch(name):
        raise click.BadParameter("a secret name is letters, digits and '_', starting with a "
                                 "letter or '_'", param_hint="NAME")
    root = obj.workspace_path()
    settings = _settings(root)
    dotenv = root / str((settings.get("secrets") or {}).get("dotenv", ".env"))
    existing = dotenv.read_text("utf-8") if dotenv.is_file() else ""
    if re.search(rf"^\s*(export\s+)?{re.escape(name)}\s*=", existing, re.MULTILINE):
        fail(f"{dotenv.name} already has {name}: choose another NAME (to rotate a token, "
             "create a new one, list both in server.tokens, then remove the old one)")
    import secrets  # here: hashlib and hmac cost every other command 6 ms

    value = "aios_" + secrets.token_urlsafe(32)
    prefix = "" if not existing or existing.endswith("\n") else "\n"
    fd = os.open(dotenv, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(f"{prefix}{name}={value}\n")
    reference = f"${{{{ secrets.{name} }}}}"
    click.echo(f"created the API token {name} in {dotenv} (the value is not shown)")
    listed = [str(t) for t in ((settings.get("server") or {}).get("tokens") or [])]
    if any(re.fullmatch(rf"\$\{{\{{\s*secrets\.{re.escape(name)}\s*\}}\}}", t.strip())
           for t in listed):
        click.echo("server.tokens in aios.yaml lists it already")
    else:
        click.echo("add it to aios.yaml (then restart `aiosrun serve --http`):\n"
                   "  server:\n    tokens:\n"
                   + "".join(f"      - \"{t}\"\n" for t in listed)
                   + f"      - \"{reference}\"")
    click.echo("a client reads it from the .env file, e.g.:\n"
               f"  export AIOS_TOKEN=\"$(grep '^{name}=' {dotenv} | cut -d= -f2-)\"\n"
               "  curl -H \"Authorization: Bearer $AIOS_TOKEN\" "
               "http://127.0.0.1:8787/api/v1/runs")


def _settings(root: Path) -> dict[str, Any]:
    from aiosrun.dsl.errors import PlaybookError
    from aiosrun.dsl.loader import load_file

    try:
        data = load_file(root / "aios.yaml").data
    except PlaybookError as exc:
        fail(str(exc))
    return data if isinstance(data, dict) else {}
