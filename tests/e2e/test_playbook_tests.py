"""`aiosrun test`: playbook tests run in throwaway copies, report failures at their line,
write JUnit XML, refuse the network, and never touch the real workspace (nor, on a
PostgreSQL store, its database)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

from .conftest import Runner, store_url

FAILING = """\
apiVersion: aiosrun/v1
kind: Test
playbook: customer-onboarding
cases:
  - name: expects the wrong things
    inputs: {customer: {email: ada@example.com, name: Ada, plan: pro}}
    models:
      welcome: {output: {subject: Hi, body: Welcome, confidence: 0.9}}
    decisions: {review: approve}
    expect:
      status: failed
      outputs: {invoice_id: INV-77}
      steps: {send: {attempts: 2}}
"""

NETWORK = """\
apiVersion: aiosrun/v1
kind: Test
playbook: content-cadence
cases:
  - name: an unmocked request is refused
    inputs: {topic: t, publish_url: "https://blog.example.com/api"}
    models:
      draft: {output: {title: T, body: B, confidence: 0.9}}
    decisions: {review: approve}
    expect:
      status: compensated
      steps: {publish: {status: failed}}
"""

UNKNOWN = """\
apiVersion: aiosrun/v1
kind: Test
playbook: customer-onboarding
cases:
  - name: typo
    mocks:
      sned: {outputs: {}}
    decisions: {reveiw: approve}
"""


def test_shipped_tests_pass_and_leave_the_workspace_alone(aiosrun: Runner, tmp_path: Path,
                                                           store: str) -> None:
    assert aiosrun("init", "shop", "--no-git").returncode == 0
    shop = tmp_path / "shop"
    settings = shop / "aios.yaml"
    settings.write_text(settings.read_text() + store)
    done = aiosrun("test", "--junit", "report.xml", cwd=shop)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 passed, 0 failed" in done.stdout
    assert done.stdout.count("PASS tests/customer-onboarding.yaml::") == 2
    report = ElementTree.parse(shop / "report.xml").getroot()
    assert report.get("tests") == "6" and report.get("failures") == "0"
    only = aiosrun("test", "-k", "rejected welcome", cwd=shop)
    assert only.returncode == 0 and only.stdout.splitlines()[-1] == "1 passed, 0 failed"
    assert json.loads(aiosrun("runs", "--format", "json", cwd=shop).stdout) == []
    assert not (shop / ".aios" / "outbox").exists()
    assert not (shop / ".aios" / "billing").exists()
    url = store_url(shop)
    if url is not None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            tables = [row[0] for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                "'public'")]
            assert "aios_events" in tables  # the store was opened (runs read it)
            for table in tables:
                assert conn.execute(f'SELECT count(*) FROM "{table}"').fetchone() == (0,), table


def test_failed_expectations_are_reported_at_their_lines(aiosrun: Runner,
                                                         tmp_path: Path) -> None:
    assert aiosrun("init", "shop", "--no-git").returncode == 0
    shop = tmp_path / "shop"
    (shop / "tests" / "wrong.yaml").write_text(FAILING)
    (shop / "tests" / "network.yaml").write_text(NETWORK)
    done = aiosrun("test", "tests/wrong.yaml", "tests/network.yaml", "--junit", "out.xml",
                   cwd=shop)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert "  tests/wrong.yaml:11:15: expected \"failed\", got \"succeeded\" (status)" in lines
    assert ("  tests/wrong.yaml:12:29: expected \"INV-77\", got \"INV-00001\" "
            "(outputs.invoice_id)") in lines
    assert "  tests/wrong.yaml:13:32: expected 2, got 1 (steps.send.attempts)" in lines
    assert "PASS tests/network.yaml::an unmocked request is refused" in done.stdout
    assert lines[-1] == "1 passed, 1 failed"
    report = ElementTree.parse(shop / "out.xml").getroot()
    failures = report.findall(".//failure")
    assert len(failures) == 1 and "expected" in (failures[0].get("message") or "")


def test_unknown_step_ids_in_a_test_are_positioned_errors(aiosrun: Runner,
                                                          tmp_path: Path) -> None:
    assert aiosrun("init", "shop", "--no-git").returncode == 0
    shop = tmp_path / "shop"
    (shop / "tests" / "typo.yaml").write_text(UNKNOWN)
    done = aiosrun("test", "tests/typo.yaml", cwd=shop)
    assert done.returncode == 1
    assert ("tests/typo.yaml:7:7: error: no step 'sned' in the playbook; did you mean "
            "'send'?") in done.stdout
    assert "tests/typo.yaml:8:17: error: no step 'reveiw' in the playbook; did you mean " \
           "'review'?" in done.stdout


def test_validate_checks_test_files(aiosrun: Runner, tmp_path: Path) -> None:
    assert aiosrun("init", "shop", "--no-git").returncode == 0
    shop = tmp_path / "shop"
    assert aiosrun("validate", cwd=shop).returncode == 0  # the shipped tests are valid
    (shop / "tests" / "typo.yaml").write_text(UNKNOWN.replace(
        "playbook: customer-onboarding", "playbook: customer-onbording"))
    (shop / "tests" / "bad.yaml").write_text(UNKNOWN.replace("    decisions: {reveiw: approve}",
                                                             "    decisions: {review: maybe}"))
    done = aiosrun("validate", "tests/typo.yaml", "tests/bad.yaml", cwd=shop)
    assert done.returncode == 1
    assert ("tests/typo.yaml:3:11: error: no playbook named 'customer-onbording' in the "
            "workspace; did you mean 'customer-onboarding'?") in done.stdout
    assert "tests/bad.yaml:8:25: error: expected one of 'approve', 'reject'" in done.stdout
    assert aiosrun("validate", cwd=shop).returncode == 1  # tests/ is checked by default
    schema = aiosrun("schema", "test")
    assert schema.returncode == 0 and '"kind"' in schema.stdout
