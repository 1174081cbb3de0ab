"""MCP servers of a workspace as adapters: ``mcp.NAME`` in aios.yaml makes ``NAME.TOOL``
actions for ``uses:`` steps and agents.

The tools and their input schemas come from a cache (``.aios/mcp/NAME.json``) that
``aiosrun mcp tools NAME`` writes, so ``validate`` checks arguments offline and the runtime
checks them before a call. A stdio server (``command`` + ``env``) is started for each call
and stopped after it; a streamable HTTP server (``url``) must be allowed by
``adapters.http.allow_hosts``. A server that does not start, or a tool that reports an
error, fails the step with the server's own words. The ``mcp`` SDK (anyio: it runs under
trio) is imported only when a server is spoken to.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from .base import Action, Adapter, CallContext, PermanentError, TransientError, resolve_secrets
from .http import host_allowed

DEFAULT_TIMEOUT_S = 60.0


class McpAdapter(Adapter):
    """One MCP server; :func:`server_adapter` makes the class for each declared server."""

    server: ClassVar[Mapping[str, Any]] = {}
    allow_hosts: ClassVar[tuple[str, ...]] = ()

    async def call(self, action: str, args: Mapping[str, Any],
                   ctx: CallContext) -> Mapping[str, Any]:
        result = await call_tool(self.name, self.server, ctx.workspace, ctx.secrets,
                                 self.allow_hosts, action, dict(args))
        return result


def server_adapter(name: str, server: Mapping[str, Any], state_dir: Path,
                   allow_hosts: tuple[str, ...] = ()) -> type[McpAdapter]:
    actions = cached_actions(state_dir, name)
    attributes = {"name": name, "description": f"MCP server '{name}'", "actions": actions,
                  "server": dict(server), "allow_hosts": allow_hosts}
    return type(f"McpAdapter_{name}", (McpAdapter,), attributes)


def cache_path(state_dir: Path, name: str) -> Path:
    return state_dir / "mcp" / f"{name}.json"


def cached_actions(state_dir: Path, name: str) -> dict[str, Action]:
    try:
        tools = json.loads(cache_path(state_dir, name).read_text("utf-8"))["tools"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {str(t["name"]): Action(str(t.get("description") or ""),
                                   dict(t.get("input_schema") or {"type": "object"}))
            for t in tools if isinstance(t, dict) and "name" in t}


def _client(name: str, server: Mapping[str, Any], root: Path, secrets: Mapping[str, str],
            allow_hosts: tuple[str, ...]) -> Any:
    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters

    timeout = _timeout(server)
    if server.get("url"):
        url = str(server["url"])
        if not host_allowed(url, list(allow_hosts)):
            raise PermanentError(f"MCP server '{name}': {url} is not in "
                                 "adapters.http.allow_hosts")
        return Client(url, read_timeout_seconds=timeout)
    command = [str(part) for part in server.get("command") or ()]
    if not command:
        raise PermanentError(f"MCP server '{name}': no command or url in aios.yaml")
    # the SDK merges these over a minimal environment: the workspace's secrets and the
    # operator's environment do not reach the server unless aios.yaml passes them
    env = {k: resolve_secrets(v, secrets) for k, v in (server.get("env") or {}).items()}
    cwd = root / str(server.get("cwd", "."))
    return Client(StdioServerParameters(command=command[0], args=command[1:], env=env,
                                        cwd=cwd), read_timeout_seconds=timeout)


def _timeout(server: Mapping[str, Any]) -> float:
    from aiosrun.dsl.durations import parse_duration

    given = parse_duration(str(server.get("timeout") or ""))
    return given / 1000 if given else DEFAULT_TIMEOUT_S


async def list_tools(name: str, server: Mapping[str, Any], root: Path, state_dir: Path,
                     secrets: Mapping[str, str], allow_hosts: tuple[str, ...] = ()
                     ) -> list[dict[str, Any]]:
    """The server's tools (name, description, input schema), written to the cache."""
    client = _client(name, server, root, secrets, allow_hosts)
    try:
        async with client as session:
            listed = await session.list_tools()
    except PermanentError:
        raise
    except Exception as exc:
        raise PermanentError(f"MCP server '{name}' did not answer: {_why(exc)}") from None
    tools = [{"name": t.name, "description": t.description or "",
              "input_schema": t.input_schema} for t in listed.tools]
    path = cache_path(state_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"server": name, "tools": tools}, indent=2), "utf-8")
    temporary.replace(path)
    return tools


async def call_tool(name: str, server: Mapping[str, Any], root: Path,
                    secrets: Mapping[str, str], allow_hosts: tuple[str, ...], tool: str,
                    args: dict[str, Any]) -> dict[str, Any]:
    """One tool call; the structured result, a JSON object the text holds, or the text."""
    import trio

    client = _client(name, server, root, secrets, allow_hosts)
    try:
        with trio.fail_after(_timeout(server) + 30):  # the start, the handshake, the call
            async with client as session:
                result = await session.call_tool(tool, args)
    except PermanentError:
        raise
    except trio.TooSlowError:
        raise TransientError(f"MCP server '{name}': {tool} took too long") from None
    except Exception as exc:
        raise PermanentError(f"MCP server '{name}' failed ({tool}): {_why(exc)}") from None
    texts = [str(getattr(part, "text", "")) for part in result.content or ()
             if getattr(part, "text", None) is not None]
    if result.is_error:
        raise PermanentError(f"{name}.{tool}: {' '.join(texts) or 'the tool reported an error'}")
    if isinstance(result.structured_content, dict):
        return dict(result.structured_content)
    if len(texts) == 1:
        try:
            parsed = json.loads(texts[0])
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    return {"text": "\n".join(texts)}


def _why(exc: BaseException) -> str:
    """The innermost cause, one line (task groups wrap what went wrong)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
