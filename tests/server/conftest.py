"""A real ``aiosrun serve --http 127.0.0.1:PORT`` in a subprocess, on a free port, and an
httpx client for it; every wait is bounded."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

TOKEN = "tok-" + "s3cr3t" * 4
FORMS_SECRET = "whsec_" + base64.b64encode(b"forms-signing-key-0123456789abcd").decode()
FORMS_OLD = "whsec_" + base64.b64encode(b"forms-old-key-0123456789abcdefg").decode()
GITHUB_SECRET = "gh-hook-secret-value"
STRIPE_SECRET = "whsec_stripe_signing_value"
PLAIN_SECRET = "plain-hmac-secret-value"

WORKSPACE = """apiVersion: aiosrun/v1
kind: Workspace
server:
  tokens: ["${{ secrets.API_TOKEN }}"]
  max_body: 4096
  read_timeout: 2s
  webhooks:
    forms:
      event: lead.created
      verify: standard
      secret: ["${{ secrets.FORMS_SECRET }}", "${{ secrets.FORMS_OLD }}"]
    gh:
      event: github.${{ headers['x-github-event'] }}
      verify: github
      secret: ${{ secrets.GITHUB_SECRET }}
    shop:
      event: ${{ body.type }}
      verify: stripe
      secret: ${{ secrets.STRIPE_SECRET }}
    plain:
      event: plain.ping
      verify: hmac-sha256
      header: X-Signature
      secret: ${{ secrets.PLAIN_SECRET }}
"""

PLAYBOOKS = {
    "three": """apiVersion: aiosrun/v1
kind: Playbook
name: three
inputs:
  who: {type: string}
steps:
  - id: a
    uses: debug.echo
    with: {value: "${{ inputs.who }}"}
  - id: b
    uses: debug.echo
    with: {value: b}
  - id: c
    uses: debug.echo
    with: {value: c}
outputs:
  who: ${{ steps.a.outputs.value }}
""",
    "gated": """apiVersion: aiosrun/v1
kind: Playbook
name: gated
steps:
  - id: review
    gate: {message: "Ship it?"}
  - id: done
    uses: debug.echo
    with: {value: shipped}
""",
    "slow": """apiVersion: aiosrun/v1
kind: Playbook
name: slow
steps:
  - id: nap
    uses: debug.sleep
    with: {seconds: 1.5}
""",
    "flaky": """apiVersion: aiosrun/v1
kind: Playbook
name: flaky
steps:
  - id: check
    uses: debug.fail
    with: {times: 5, error: permanent, value: checked}
    escalate: {after_attempts: 1, message: needs a look}
""",
    "on-lead": """apiVersion: aiosrun/v1
kind: Playbook
name: on-lead
on:
  event: lead.created
steps:
  - id: note
    uses: files.append
    with: {path: leads.txt, line: "${{ event.email }}"}
  - id: pause
    uses: debug.sleep
    with: {seconds: 1}
  - id: again
    uses: files.append
    with: {path: leads-done.txt, line: "${{ event.email }}"}
""",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def aiosrun_command() -> list[str]:
    script = shutil.which("aiosrun", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "aiosrun.runtime"]


def make_workspace(root: Path, workspace: str = WORKSPACE) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "aios.yaml").write_text(workspace, "utf-8")
    (root / ".env").write_text(
        f"API_TOKEN={TOKEN}\nFORMS_SECRET={FORMS_SECRET}\nFORMS_OLD={FORMS_OLD}\n"
        f"GITHUB_SECRET={GITHUB_SECRET}\nSTRIPE_SECRET={STRIPE_SECRET}\n"
        f"PLAIN_SECRET={PLAIN_SECRET}\n", "utf-8")
    (root / "playbooks").mkdir(exist_ok=True)
    for name, text in PLAYBOOKS.items():
        (root / "playbooks" / f"{name}.yaml").write_text(text, "utf-8")
    done = subprocess.run([*aiosrun_command(), "apply"], cwd=root, capture_output=True,
                          text=True, timeout=60, env=clean_env())
    assert done.returncode == 0, done.stderr
    return root


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "AIOS_WORKSPACE"}


@dataclass
class Server:
    root: Path
    port: int
    process: subprocess.Popen[str] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "serve.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> Server:
        handle = self.log.open("a")
        self.process = subprocess.Popen(
            [*aiosrun_command(), "serve", "--interval", "0.2", "--http",
             f"127.0.0.1:{self.port}", *extra],
            cwd=self.root, stdout=handle, stderr=subprocess.STDOUT, text=True, env=clean_env())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"serve did not come up: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=20)


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = make_workspace(tmp_path_factory.mktemp("served") / "shop")
    running = Server(root, free_port()).start()
    yield running
    running.stop()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client
