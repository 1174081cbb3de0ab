"""`aiosrun mcp serve` driven by the MCP SDK's own client over stdio: playbooks, runs with
their inputs checked, the inbox, memory search, events; gates decided only with
`server.mcp.decisions: true`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

GATED = """\
apiVersion: aiosrun/v1
kind: Playbook
name: gated
inputs:
  who: {type: string}
steps:
  - id: review
    gate: {message: "Greet ${{ inputs.who }}?"}
outputs:
  decision: ${{ steps.review.outputs.decision }}
"""

SETTINGS = "apiVersion: aiosrun/v1\nkind: Workspace\nname: shop\n"


def _workspace(root: Path, decisions: bool) -> Path:
    (root / "playbooks").mkdir(parents=True)
    (root / "aios.yaml").write_text(
        SETTINGS + ("server: {mcp: {decisions: true}}\n" if decisions else ""))
    (root / "playbooks" / "gated.yaml").write_text(GATED)
    return root


def _command() -> tuple[str, list[str]]:
    script = shutil.which("aiosrun", path=str(Path(sys.executable).parent))
    return (script, ["mcp", "serve"]) if script else \
        (sys.executable, ["-m", "aiosrun.runtime", "mcp", "serve"])


def _data(result: Any) -> Any:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        content = result.structured_content
        return content.get("result", content) if isinstance(content, dict) else content
    return json.loads(result.content[0].text)


def session(root: Path, work: Any) -> Any:
    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters

    command, args = _command()

    async def main() -> Any:
        with trio.fail_after(60):
            async with Client(StdioServerParameters(command=command, args=args,
                                                    cwd=root)) as client:
                return await work(client)

    return trio.run(main)


def test_mcp_serve_without_decisions(tmp_path: Path) -> None:
    root = _workspace(tmp_path, decisions=False)
    subprocess.run([*_command_line(), "apply"], cwd=root, check=True, capture_output=True)

    async def work(client: Any) -> dict[str, Any]:
        names = sorted(t.name for t in (await client.list_tools()).tools)
        playbooks = _data(await client.call_tool("list_playbooks", {}))
        refused = await client.call_tool("start_run", {"playbook": "gated",
                                                       "inputs": {"who": 3}})
        run = _data(await client.call_tool("start_run", {"playbook": "gated",
                                                         "inputs": {"who": "Ada"}}))
        again = _data(await client.call_tool("get_run", {"run_id": run["id"]}))
        inbox = _data(await client.call_tool("list_inbox", {}))
        emitted = _data(await client.call_tool("emit_event", {"event": "note.added",
                                                              "data": {"n": 1}, "id": "n-1"}))
        missing = await client.call_tool("get_run", {"run_id": "nope"})
        return {"names": names, "playbooks": playbooks, "refused": refused, "run": run,
                "again": again, "inbox": inbox, "emitted": emitted, "missing": missing}

    got = session(root, work)
    assert got["names"] == ["emit_event", "get_run", "list_inbox", "list_playbooks",
                            "search_memory", "start_run"]
    assert [p["name"] for p in got["playbooks"]] == ["gated"]
    assert got["refused"].is_error
    assert "who" in got["refused"].content[0].text
    assert got["run"]["status"] == "waiting"
    assert got["again"]["id"] == got["run"]["id"]
    assert [i["run"] for i in got["inbox"]] == [got["run"]["id"]]
    assert got["emitted"]["seq"] > 0
    assert got["missing"].is_error and "nope" in got["missing"].content[0].text


def test_mcp_serve_decides_gates_when_allowed(tmp_path: Path) -> None:
    root = _workspace(tmp_path, decisions=True)
    subprocess.run([*_command_line(), "apply"], cwd=root, check=True, capture_output=True)

    async def work(client: Any) -> tuple[list[str], dict[str, Any]]:
        names = sorted(t.name for t in (await client.list_tools()).tools)
        run = _data(await client.call_tool("start_run", {"playbook": "gated",
                                                         "inputs": {"who": "Ada"}}))
        done = _data(await client.call_tool("approve_gate", {"run_id": run["id"],
                                                             "comment": "fine"}))
        return names, done

    names, done = session(root, work)
    assert "approve_gate" in names and "reject_gate" in names
    assert done["status"] == "succeeded"
    assert done["outputs"] == {"decision": "approved"}


def _command_line() -> list[str]:
    command, args = _command()
    return [command, *args[:-2]] if args[-2:] == ["mcp", "serve"] else [command]
