"""Shared fixtures; hypothesis runs derandomized in CI so a red run can be reproduced."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=200,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real filesystem of 4 MiB (a tmpfs mounted for the test, unmounted after it), to
    fill up or to remount read-only."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); a real full "
                    "filesystem needs one (run as root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)



@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """One real PostgreSQL server for the session (tests/support/postgres.py), stopped and
    removed at its end. Without the package: skipped locally, an error in CI (``.ci/run``
    installs it)."""
    from tests.support.postgres import PostgresServer, find_bindir

    if find_bindir() is None:
        message = "PostgreSQL is not installed: apt-get install -y postgresql"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: object) -> str:
    """A fresh, empty database on the session's server."""
    from tests.support.postgres import PostgresServer

    assert isinstance(postgres_server, PostgresServer)
    return postgres_server.database()


@pytest.fixture(params=["jsonl", "postgresql"])
def store(request: pytest.FixtureRequest) -> str:
    """The ``store:`` line of ``aios.yaml`` for each store a test runs against: none (the
    JSONL log in ``.aios/``) or a fresh database on the session's PostgreSQL server."""
    if request.param == "jsonl":
        return ""
    server = request.getfixturevalue("postgres_server")
    return f'store: {{url: "{server.database()}", lease_timeout: 3s}}\n'
