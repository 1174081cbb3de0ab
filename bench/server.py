"""HTTP server speed (DESIGN section 10), each figure beside a bare Starlette route served by
the same server in the same run:

- ``POST /api/v1/runs?wait=10s`` of a three-step playbook: p50 and p95 over 1,000 requests
  from 8 concurrent clients (goal: p50 within 3x of the bare route's, p95 under 50 ms);
- ``POST /hooks/forms`` (Standard Webhooks, verified, recorded, fsynced): acknowledgements
  per second from 8 concurrent clients.

The server is a real ``serve --http`` process (this file with ``--serve``, which adds the
bare route); the clients are httpx under trio in this process. Numbers only; nothing is
asserted. ``python bench/server.py [--requests 1000] [--clients 8]``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOKEN = "bench-token-0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(b"bench-webhook-signing-key-012345").decode()
WORKSPACE = """apiVersion: aiosrun/v1
kind: Workspace
server:
  tokens: ["${{ secrets.API_TOKEN }}"]
  max_concurrent_runs: 8
  webhooks:
    forms: {event: lead.created, verify: standard, secret: "${{ secrets.FORMS }}"}
"""
PLAYBOOK = """apiVersion: aiosrun/v1
kind: Playbook
name: three
inputs:
  who: {type: string}
steps:
  - id: a
    uses: debug.echo
    with: {value: "${{ inputs.who }}"}
  - id: b
    set: {greeting: "hello ${{ steps.a.outputs.value }}"}
  - id: c
    uses: debug.echo
    with: {value: "${{ steps.b.outputs.greeting }}"}
outputs:
  greeting: ${{ steps.c.outputs.value }}
"""


def serve(root: Path, port: int) -> None:
    """The server side: ``serve --http`` with one extra, bare route."""
    import trio
    from aiosrun.runtime.engine import Engine
    from aiosrun.runtime.server.serve import config_for, serve_http
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def bare(request: Request) -> Response:
        await request.body()
        return JSONResponse({"ok": True})

    async def main() -> None:
        async with Engine.open(root) as engine:
            config = config_for(engine, f"127.0.0.1:{port}")
            await serve_http(engine, config, lambda line: print(line, file=sys.stderr),
                             extra=[Route("/bench/bare", bare, methods=["POST"])])

    trio.run(main)


def signed(body: bytes, delivery: str) -> dict[str, str]:
    from standardwebhooks.webhooks import Webhook

    now = dt.datetime.now(dt.UTC)
    return {"webhook-id": delivery, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(SECRET).sign(delivery, now, body.decode()),
            "content-type": "application/json"}


async def load(base: str, requests: int, clients: int, make: Any) -> tuple[list[float], float]:
    """``requests`` made by ``clients`` concurrent clients; latencies (ms) and wall time."""
    import httpx
    import trio

    latencies: list[float] = []
    counter = iter(range(requests))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            for index in counter:
                method, path, content, headers = make(index)
                started = time.perf_counter()
                response = await http.request(method, path, content=content, headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code >= 300 and response.status_code != 202:
                    raise SystemExit(f"{path}: {response.status_code} {response.text}")

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(client)
    return latencies, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(label: str, latencies: list[float], seconds: float) -> dict[str, float]:
    figures = {"p50": statistics.median(latencies), "p95": percentile(latencies, 0.95),
               "per_s": len(latencies) / seconds}
    print(f"{label:<38} p50 {figures['p50']:6.2f} ms   p95 {figures['p95']:6.2f} ms   "
          f"{figures['per_s']:7.0f}/s")
    return figures


def cpu_ms(pid: int) -> float:
    """The server process's CPU time so far (user + system), from ``/proc``: a figure the
    noise of other processes on the machine moves far less than latencies."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--serve", nargs=2, metavar=("ROOT", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]))
        return
    import httpx
    import trio

    root = Path(tempfile.mkdtemp(prefix="aiosrun-bench-server-")) / "shop"
    (root / "playbooks").mkdir(parents=True)
    (root / "aios.yaml").write_text(WORKSPACE, "utf-8")
    (root / ".env").write_text(f"API_TOKEN={TOKEN}\nFORMS={SECRET}\n", "utf-8")
    (root / "playbooks" / "three.yaml").write_text(PLAYBOOK, "utf-8")
    aiosrun = [sys.executable, "-m", "aiosrun.runtime"]
    subprocess.run([*aiosrun, "apply"], cwd=root, check=True, capture_output=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(root), str(port)],
                              stderr=subprocess.DEVNULL, env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.1)
        body = json.dumps({"playbook": "three", "inputs": {"who": "ada"}}).encode()
        run = ("POST", "/api/v1/runs?wait=10s", body, {"content-type": "application/json"})

        def bare(_: int) -> tuple[str, str, bytes, dict[str, str]]:
            return ("POST", "/bench/bare", body, {"content-type": "application/json"})

        def hook(index: int) -> tuple[str, str, bytes, dict[str, str]]:
            payload = json.dumps({"email": f"lead-{index}@example.com"}).encode()
            return ("POST", "/hooks/forms", payload, signed(payload, f"msg_{index}_{port}"))

        n, c = args.requests, args.clients
        print(f"{n} requests, {c} concurrent clients, one server process")
        trio.run(load, base, 100, c, bare)  # warm both paths up
        trio.run(load, base, 50, c, lambda _: run)
        before = cpu_ms(server.pid)
        bare_run = report("bare Starlette route (POST)", *trio.run(load, base, n, c, bare))
        between = cpu_ms(server.pid)
        ours = report("POST /api/v1/runs?wait (3 steps)",
                      *trio.run(load, base, n, c, lambda _: run))
        after = cpu_ms(server.pid)
        bare_hook = report("bare Starlette route (POST), again", *trio.run(load, base, n, c,
                                                                          bare))
        hooks = report("POST /hooks/forms (verify+fsync+ack)", *trio.run(load, base, n, c,
                                                                         hook))
        print(f"sync run p50 / bare p50: {ours['p50'] / bare_run['p50']:.2f}x (goal <= 3x); "
              f"p95 {ours['p95']:.1f} ms (goal < 50 ms)")
        print(f"server CPU per request: bare route {(between - before) / n:.2f} ms, sync run "
              f"{(after - between) / n:.2f} ms")
        print(f"webhook acks/s: {hooks['per_s']:.0f} (bare route {bare_hook['per_s']:.0f}/s)")
        runs = httpx.get(f"{base}/api/v1/runs?status=succeeded", timeout=30,
                         headers={"Authorization": f"Bearer {TOKEN}"}).json()
        print(f"runs succeeded: {len(runs)}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
