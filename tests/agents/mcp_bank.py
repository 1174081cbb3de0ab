"""A real MCP server over stdio, written with the SDK, for the MCP client tests: a bank with
balances and transfers (written to a file in its working folder, once per reference)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mcp.server import MCPServer

server = MCPServer("bank")


@server.tool()
def get_balance(account: str) -> dict[str, object]:
    """The balance of an account."""
    return {"account": account, "balance": 125.5, "currency": os.environ.get("BANK_CCY", "")}


@server.tool()
def transfer(reference: str, amount: float) -> dict[str, object]:
    """Move money out (once per reference)."""
    book = Path("transfers.jsonl")
    lines = book.read_text().splitlines() if book.exists() else []
    if not any(json.loads(line)["reference"] == reference for line in lines):
        with book.open("a") as out:
            out.write(json.dumps({"reference": reference, "amount": amount}) + "\n")
    return {"reference": reference, "done": True}


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["http"]:  # streamable HTTP on 127.0.0.1:PORT/mcp
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
