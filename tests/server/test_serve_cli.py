"""``aiosrun serve --http`` and ``aiosrun token`` as an operator uses them: refusals are
one line and exit 1, a signal stops HTTP and schedules together, a token works once listed."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import httpx

from .conftest import Server, aiosrun_command, clean_env, free_port, make_workspace

BARE = "apiVersion: aiosrun/v1\nkind: Workspace\n"


def aiosrun(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*aiosrun_command(), *args], cwd=root, capture_output=True,
                          text=True, timeout=60, env=clean_env())


def test_without_tokens_only_loopback_is_served(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "aios.yaml").write_text(BARE, "utf-8")
    refused = aiosrun(root, "serve", "--http", f"0.0.0.0:{free_port()}")
    assert refused.returncode == 1
    assert "refusing to serve on 0.0.0.0 without API tokens" in refused.stderr
    assert "Traceback" not in refused.stderr
    bad = aiosrun(root, "serve", "--http", "127.0.0.1:notaport")
    assert bad.returncode == 1 and "is not [HOST:]PORT" in bad.stderr
    usage = aiosrun(root, "serve", "--once", "--http", "8787")
    assert usage.returncode == 2


def test_a_missing_webhook_secret_stops_the_start_with_one_line(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws")
    (root / ".env").write_text("API_TOKEN=x\n", "utf-8")
    done = aiosrun(root, "serve", "--http", str(free_port()))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: server.webhooks.forms")
    assert "FORMS_SECRET is not set" in done.stderr


def test_server_listen_serves_without_the_flag_and_sigterm_stops_it(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    port = free_port()
    (root / "aios.yaml").write_text(BARE + f"server:\n  listen: 127.0.0.1:{port}\n", "utf-8")
    process = subprocess.Popen([*aiosrun_command(), "serve", "--interval", "0.2"], cwd=root,
                               stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert f"listening on http://127.0.0.1:{port}" in line
        assert "no server.tokens" in line
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert client.get("/api/v1/runs").json() == []  # loopback, no tokens: open
            with client.stream("GET", "/api/v1/events/stream") as stream:
                assert stream.status_code == 200
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=20) == 0  # an open stream does not hold it
        assert "stopped" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_token_creates_a_working_token_without_printing_it(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "aios.yaml").write_text(BARE + "# the operator's own comment\n", "utf-8")
    created = aiosrun(root, "token")
    assert created.returncode == 0, created.stderr
    value = re.search(r"^AIOS_API_TOKEN=(\S+)$", (root / ".env").read_text(), re.M)
    assert value is not None and len(value.group(1)) > 30
    assert value.group(1) not in created.stdout + created.stderr
    assert "- \"${{ secrets.AIOS_API_TOKEN }}\"" in created.stdout
    assert (root / ".env").stat().st_mode & 0o077 == 0
    assert aiosrun(root, "token").returncode == 1  # the name is taken
    (root / "aios.yaml").write_text(
        BARE + "# the operator's own comment\nserver:\n  tokens: [\"${{ secrets.AIOS_API_TOKEN "
        "}}\", \"${{ secrets.THIRD }}\"]\n", "utf-8")
    assert "server.tokens in aios.yaml lists it already" in aiosrun(root, "token",
                                                                    "THIRD").stdout
    server = Server(root, free_port()).start()
    try:
        with server.client(token=value.group(1)) as good:
            assert good.get("/api/v1/runs").status_code == 200
        with server.client(token=None) as anonymous:
            assert anonymous.get("/api/v1/runs").status_code == 401
    finally:
        server.stop()
    assert "# the operator's own comment" in (root / "aios.yaml").read_text()


def test_validate_checks_webhook_expressions(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "aios.yaml").write_text(BARE + (
        "server:\n  webhooks:\n    a:\n      event: ${{ inputs.kind }}\n      verify: github\n"
        "      secret: ${{ secrets.A }}\n    b:\n      event: not a name\n"
        "      verify: github\n      secret: ${{ secrets.B }}\n    c:\n"
        "      event: ${{ body.type }}\n      verify: stripe\n      secret: plain-text\n"), "utf-8")
    done = aiosrun(root, "validate")
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert "aios.yaml:6:18: error: unknown context 'inputs'; available here: body, headers" in out
    assert "aios.yaml:10:14: error: 'not a name' is not an event name" in out
    assert "expected a secret reference" in out
