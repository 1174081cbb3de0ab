"""The CLI as a new user meets it: help, version, usage errors, validate, fmt, schema."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from .conftest import Runner

COMMANDS = ["validate", "fmt", "schema", "eval", "apply", "run", "resume", "runs", "status",
            "timeline", "replay", "cancel", "doctor", "approve", "reject", "resolve", "inbox",
            "emit", "serve", "adapters", "plan", "memory", "init", "test", "fork", "token", "mcp",
            "migrate"]
GOOD = """apiVersion: aiosrun/v1
kind: Playbook
name: hello
steps:
  - id: say
    uses: debug.echo
    with: {value: hi}
"""
BAD = GOOD.replace("uses:", "usse:").replace("name: hello", "name: broken")


def test_version(aiosrun: Runner) -> None:
    done = aiosrun("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("aiosrun, version ")


def test_version_is_cold() -> None:
    """`--version` must not import the heavy runtime libraries."""
    code = (
        "import sys\n"
        "sys.argv = ['aiosrun', '--version']\n"
        "from aiosrun.runtime.cli import main\n"
        "try:\n    main()\n"
        "except SystemExit:\n    pass\n"
        "heavy = {'trio', 'tantivy', 'usearch', 'httpx', 'instructor', 'openai', 'jsonschema',"
        " 'lark'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(aiosrun: Runner, command: str) -> None:
    done = aiosrun(command, "--help")
    assert done.returncode == 0
    assert f"Usage: aiosrun {command}" in done.stdout


def test_only_built_commands_are_listed(aiosrun: Runner) -> None:
    rows = aiosrun("--help").stdout.split("Commands:")[1].splitlines()
    listed = {row.split()[0] for row in rows if row.startswith("  ") and row.split()}
    assert listed == set(COMMANDS)


@pytest.mark.parametrize("args", [["--bogus"], ["validate", "--format", "xml"], ["nope"],
                                  ["schema", "other"]])
def test_wrong_usage_exits_2(aiosrun: Runner, args: list[str]) -> None:
    done = aiosrun(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "Usage:" in done.stderr


def test_validate_reports_positioned_errors(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    done = aiosrun("validate", "good.yaml", "bad.yaml")
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "bad.yaml:6:5: error: unknown key 'usse' in step 'say'; did you mean 'uses'? "
        "[unknown-key]",
        "bad.yaml:7:5: error: 'with' is given without 'uses' or 'agent' in step 'say' "
        "[missing-key]",
    ]
    assert "2 errors in 1 file (2 checked)" in done.stderr
    assert aiosrun("validate", "good.yaml").returncode == 0


def test_validate_json(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD)
    done = aiosrun("validate", "--format", "json", "bad.yaml")
    assert done.returncode == 1
    first = json.loads(done.stdout)[0]
    assert first == {"file": "bad.yaml", "line": 6, "column": 5, "severity": "error",
                     "code": "unknown-key",
                     "message": "unknown key 'usse' in step 'say'; did you mean 'uses'?"}


def test_validate_missing_path(aiosrun: Runner) -> None:
    done = aiosrun("validate", "nowhere.yaml")
    assert done.returncode == 1
    assert done.stdout.startswith("nowhere.yaml:1:1: error: no such file or folder")


def test_validate_defaults_to_the_workspace(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "aios.yaml").write_text("apiVersion: aiosrun/v1\nkind: Workspace\nmodles: {}\n")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "bad.yaml").write_text(BAD)
    (tmp_path / "elsewhere.yaml").write_text("not: [valid")
    sub = tmp_path / "playbooks"
    done = aiosrun("validate", cwd=sub)
    assert done.returncode == 1
    files = {line.split(":")[0] for line in done.stdout.splitlines()}
    assert files == {"bad.yaml", str(Path("..") / "aios.yaml")} or files == {
        "bad.yaml", str(tmp_path / "aios.yaml")}
    other = aiosrun("--workspace", str(tmp_path), "validate", cwd=Path("/"))
    assert other.returncode == 1 and "modles" in other.stdout


def test_validate_templates(aiosrun: Runner) -> None:
    folder = Path(str(resources.files("aiosrun.playbooks")))
    done = aiosrun("validate", str(folder))
    assert done.returncode == 0, done.stdout
    assert "3 files valid" in done.stderr


def test_garbage_never_shows_a_traceback(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "b.yaml").write_text("a: &a [*a, *a]\n" * 3)
    (tmp_path / "c.yaml").write_text("steps: " + "[" * 2000)
    done = aiosrun("validate", "a.yaml", "b.yaml", "c.yaml")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert len(done.stdout.splitlines()) >= 3


def test_fmt_check_and_write(aiosrun: Runner, tmp_path: Path) -> None:
    messy = GOOD.replace("  - id: say\n    uses", "- id: say\n  uses").replace(
        "    with:", "  with:")
    target = tmp_path / "p.yaml"
    target.write_text(messy)
    check = aiosrun("fmt", "--check", "p.yaml")
    assert check.returncode == 1 and "would reformat p.yaml" in check.stderr
    assert target.read_text() == messy
    assert aiosrun("fmt", "p.yaml").returncode == 0
    assert target.read_text() == GOOD
    assert aiosrun("fmt", "--check", "p.yaml").returncode == 0


def test_fmt_leaves_broken_files_alone(aiosrun: Runner, tmp_path: Path) -> None:
    broken = "a: 1\na: 2\n"
    (tmp_path / "d.yaml").write_text(broken)
    done = aiosrun("fmt", "d.yaml")
    assert done.returncode == 1
    assert "d.yaml:2:1: error: duplicate key 'a'" in done.stdout
    assert (tmp_path / "d.yaml").read_text() == broken


@pytest.mark.parametrize("name", ["playbook", "workspace"])
def test_schema_prints_json(aiosrun: Runner, name: str) -> None:
    done = aiosrun("schema", name)
    assert done.returncode == 0
    assert json.loads(done.stdout)["$schema"].endswith("2020-12/schema")
