"""MCP servers of aios.yaml as tools: `aiosrun mcp tools` lists and caches them, `validate`
checks `uses: NAME.TOOL` arguments offline, steps and agents call them on a real server
written with the SDK (stdio, and streamable HTTP under the allow-list), and a server that
does not start is a clear step error."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio
from aiosrun.runtime import Engine

from tests.agents.workspace import make, tool_answers, turn
from tests.e2e.conftest import Runner
from tests.support.fake_openai import FakeOpenAI, Reply

BANK = Path(__file__).with_name("mcp_bank.py")

PLAYBOOK = """\
apiVersion: aiosrun/v1
kind: Playbook
name: balance
steps:
  - id: look
    uses: bank.get_balance
    with: {account: A-1}
outputs:
  balance: ${{ steps.look.outputs.balance }}
  currency: ${{ steps.look.outputs.currency }}
"""


def workspace(root: Path, base_url: str = "http://127.0.0.1:9/v1",
              command: list[str] | None = None) -> Path:
    make(root, base_url)
    command = command or [sys.executable, str(BANK)]
    with (root / "aios.yaml").open("a") as out:
        out.write(f"mcp:\n  bank:\n    command: {json.dumps(command)}\n"
                  "    env: {BANK_CCY: EUR}\n")
    (root / "playbooks" / "balance.yaml").write_text(PLAYBOOK)
    return root


def test_tools_are_cached_validated_offline_and_called(aiosrun: Runner, tmp_path: Path) -> None:
    root = workspace(tmp_path)
    listed = aiosrun("mcp", "tools", "bank")
    assert listed.returncode == 0, listed.stderr
    assert "bank.get_balance(account)" in listed.stdout
    assert "bank.transfer(reference, amount)" in listed.stdout
    assert (root / ".aios" / "mcp" / "bank.json").is_file()
    # offline: a wrong argument is found without starting the server
    (root / "playbooks" / "broken.yaml").write_text(
        PLAYBOOK.replace("name: balance", "name: broken").replace("account: A-1", "acount: 1"))
    checked = aiosrun("validate")
    assert checked.returncode == 1
    assert "playbooks/broken.yaml:7:5: error: missing argument 'account' for " \
           "bank.get_balance" in checked.stdout, checked.stdout
    (root / "playbooks" / "broken.yaml").unlink()
    done = aiosrun("run", "playbooks/balance.yaml", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"] == {"balance": 125.5, "currency": "EUR"}


def test_a_server_that_does_not_start_is_a_clear_step_error(aiosrun: Runner,
                                                            tmp_path: Path) -> None:
    root = workspace(tmp_path, command=["/nonexistent/bank-server"])
    listed = aiosrun("mcp", "tools", "bank")
    assert listed.returncode == 1
    assert listed.stderr.startswith("error: MCP server 'bank' did not answer"), listed.stderr
    assert "Traceback" not in listed.stderr
    (root / ".aios" / "mcp").mkdir(parents=True)
    (root / ".aios" / "mcp" / "bank.json").write_text(json.dumps({"tools": [
        {"name": "get_balance", "input_schema": {"type": "object"}}]}))
    done = aiosrun("run", "playbooks/balance.yaml", "--format", "json")
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert "MCP server 'bank' failed (get_balance)" in error["message"], error
    assert "Traceback" not in done.stdout + done.stderr


def test_an_agent_uses_an_mcp_server(tmp_path: Path) -> None:
    def script(request: dict[str, Any]) -> Reply:
        if turn(request) == 1:
            return Reply(tool_calls=[("bank__transfer", {"reference": "R-1", "amount": 10})])
        answer = tool_answers(request)[0]
        return Reply({"matched": [answer["result"]["reference"]], "confidence": 0.9},
                     text=True)

    with FakeOpenAI(script) as api:
        root = workspace(tmp_path, api.base_url)
        agent = root / "agents" / "bookkeeper.yaml"
        agent.write_text(agent.read_text().replace("  - uses: ledger.record_payment\n",
                                                   "  - mcp: bank\n"))

        async def main() -> Any:
            async with Engine.open(root) as engine:
                await engine.mcp_tools("bank")
                await engine.apply()
                return await engine.start("reconcile", {"payment": {"amount": 10}})

        run = trio.run(main)
        offered = {t["function"]["name"] for t in api.requests[0]["body"]["tools"]}
    assert {"bank__get_balance", "bank__transfer", "ledger__list_invoices"} <= offered
    assert run.status == "succeeded", run.error
    assert run.outputs == {"matched": ["R-1"]}
    book = (root / "transfers.jsonl").read_text().splitlines()
    assert [json.loads(line)["reference"] for line in book] == ["R-1"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_streamable_http_server_under_the_allow_list(aiosrun: Runner, tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen([sys.executable, str(BANK), "http", str(port)], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        root = workspace(tmp_path)
        settings = (root / "aios.yaml").read_text().split("mcp:\n")[0]
        url = f"http://127.0.0.1:{port}/mcp"
        (root / "aios.yaml").write_text(settings + f"mcp:\n  bank: {{url: '{url}'}}\n")
        refused = aiosrun("mcp", "tools", "bank")
        assert refused.returncode == 1
        assert f"{url} is not in adapters.http.allow_hosts" in refused.stderr
        (root / "aios.yaml").write_text(
            settings + f"adapters:\n  http: {{allow_hosts: ['127.0.0.1:{port}']}}\n"
            f"mcp:\n  bank: {{url: '{url}'}}\n")
        listed = aiosrun("mcp", "tools", "bank")
        assert listed.returncode == 0, listed.stderr
        assert "bank.get_balance(account)" in listed.stdout
        done = aiosrun("run", "playbooks/balance.yaml", "--format", "json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["outputs"]["balance"] == 125.5
    finally:
        server.kill()
        server.wait(10)
