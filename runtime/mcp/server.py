"""``aiosrun mcp serve``: the workspace as a Model Context Protocol server over stdio.

A thin front end over the :class:`~aiosrun.runtime.engine.Engine`, as the CLI and the HTTP
server are: each tool is one Engine call, and answers are the objects of ``--format json``.
Approving and rejecting gates are offered only when ``server.mcp.decisions: true``: an MCP
client is often a model, and deciding a gate is the operator's. The SDK (anyio) runs under
trio, in the same event loop as the Engine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiosrun.dsl.errors import AiosrunError

T = TypeVar("T")


def decisions_allowed(settings: dict[str, Any]) -> bool:
    server = settings.get("server") or {}
    mcp = server.get("mcp") if isinstance(server, dict) else None
    return bool(isinstance(mcp, dict) and mcp.get("decisions") is True)


def build(engine: Any) -> Any:
    """The MCP server object (its tools bound to ``engine``)."""
    from mcp.server import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("aiosrun")
    mask: Callable[[str], str] = engine.ws.masker.text

    async def guarded(work: Awaitable[T]) -> T:
        try:
            return await work
        except AiosrunError as exc:  # the project's errors reach the client as its words
            raise ToolError(mask(str(exc))) from None

    @server.tool()
    async def list_playbooks() -> list[dict[str, Any]]:
        """The applied playbooks: name, version, description, events and input schemas."""
        result: list[dict[str, Any]] = await guarded(engine.playbooks())
        return result

    @server.tool()
    async def start_run(playbook: str, inputs: dict[str, Any] | None = None,
                        idempotency_key: str | None = None) -> dict[str, Any]:
        """Start a run of an applied playbook (inputs checked against its schema); it runs
        until it ends or waits (a gate, an event), and the run is returned."""
        run = await guarded(engine.start(playbook, inputs or {},
                                         idempotency_key=idempotency_key))
        result: dict[str, Any] = run.to_json()
        return result

    @server.tool()
    async def get_run(run_id: str) -> dict[str, Any]:
        """A run: status, steps, outputs, cost, what it waits for, its error."""
        result: dict[str, Any] = (await guarded(engine.get(run_id))).to_json()
        return result

    @server.tool()
    async def list_inbox() -> list[dict[str, Any]]:
        """What waits for the operator: gates, escalations (with an agent's transcript),
        waits, rejected events."""
        return [item.to_json() for item in await guarded(engine.inbox())]

    @server.tool()
    async def search_memory(query: str, domain: str | None = None,
                            k: int = 5) -> list[dict[str, Any]]:
        """Hybrid (BM25 + vector) search of the workspace's memory, best first."""
        hits = await guarded(engine.memory.search(
            query, domains=[domain] if domain else None, k=k))
        return [hit.to_json() for hit in hits]

    @server.tool()
    async def emit_event(event: str, data: dict[str, Any] | None = None,
                         id: str | None = None) -> dict[str, Any]:
        """Record an event (once per id): it wakes the runs waiting for it and starts the
        playbooks it triggers."""
        result: dict[str, Any] = (await guarded(engine.emit(event, data, id=id))).to_json()
        return result

    if decisions_allowed(engine.ws.settings.data):
        @server.tool()
        async def approve_gate(run_id: str, gate: str | None = None,
                               comment: str | None = None) -> dict[str, Any]:
            """Approve an open gate of a run and continue it."""
            result: dict[str, Any] = (await guarded(
                engine.approve(run_id, gate, comment=comment))).to_json()
            return result

        @server.tool()
        async def reject_gate(run_id: str, gate: str | None = None,
                              comment: str | None = None) -> dict[str, Any]:
            """Reject an open gate of a run (it compensates, or an agent reads why)."""
            result: dict[str, Any] = (await guarded(
                engine.reject(run_id, gate, comment=comment))).to_json()
            return result

    return server


def serve_stdio(root: Path) -> None:
    """Serve until the client closes stdin."""
    import trio
    from aiosrun.runtime.engine import Engine

    async def main() -> None:
        async with Engine.open(root) as engine:
            await build(engine).run_stdio_async()

    trio.run(main)
