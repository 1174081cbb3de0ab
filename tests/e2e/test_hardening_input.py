"""No input crashes a command: each hostile value below gets one positioned line and exit
status 1 (2 for usage), never a traceback, a segfault or a silent exit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import Runner, _aiosrun_command
from .test_cli_runs import workspace

HELLO = """apiVersion: aiosrun/v1
kind: Playbook
name: hello
inputs:
  tag: {type: object, default: {}}
steps:
  - {id: greet, uses: debug.echo, with: {value: "${{ inputs.tag }}"}}
"""
DEEP = 100_000


def refused(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines, done.stdout
    for needle in needles:
        assert needle in done.stderr + done.stdout, (needle, done.stderr, done.stdout)
    return done.stderr


@pytest.fixture
def ws(aiosrun: Runner, tmp_path: Path) -> Path:
    workspace(tmp_path, hello=HELLO)
    assert aiosrun("apply").returncode == 0
    return tmp_path


def test_deeply_nested_files_are_refused_not_a_segfault(aiosrun: Runner, ws: Path) -> None:
    deep = "a: " + "[" * DEEP + "]" * DEEP + "\n"
    (ws / "playbooks" / "deep.yaml").write_text("apiVersion: aiosrun/v1\n" + deep)
    refused(aiosrun("validate", "playbooks/deep.yaml"), 1, "deep.yaml:2:", "nested")
    (ws / "inputs.json").write_text('{"tag": ' + "[" * DEEP + "]" * DEEP + "}")
    refused(aiosrun("run", "hello", "--inputs", "inputs.json"), 1, "inputs.json:1:", "nested")
    (ws / "contexts.json").write_text('{"a": ' + "{\"b\": " * DEEP + "1" + "}" * DEEP + "}")
    refused(aiosrun("eval", "1", "--contexts", "contexts.json"), 1, "contexts.json:1:",
            "nested")


def test_bad_input_keys_are_usage_errors(aiosrun: Runner, ws: Path) -> None:
    refused(aiosrun("run", "hello", "-i", "tag=1", "-i", "tag.x=2"), 2,
            "'tag' is already a value (from -i tag=1)")
    refused(aiosrun("run", "hello", "-i", "tag..x=1"), 2, "key part 2 of 'tag..x' is empty")


def test_deep_json_options_are_refused_with_a_position(aiosrun: Runner, ws: Path) -> None:
    deep = "[" * 5000 + "]" * 5000
    refused(aiosrun("run", "hello", "-i", f"tag={deep}"), 1, "-i tag: line 1 column 65")
    (ws / "deep.json").write_text(deep)
    refused(aiosrun("emit", "thing.happened", "--data", "@deep.json"), 1,
            "--data @deep.json: line 1 column 65")
    refused(aiosrun("resolve", "some-run", "step", "--skip", "--outputs", deep), 1,
            "--outputs: line 1 column 65")


def test_data_that_is_not_text_is_refused(aiosrun: Runner, ws: Path) -> None:
    refused(aiosrun("emit", "thing.happened", "--data", '"\\ud800"'), 1,
            "lone surrogate \\ud800")
    (ws / "binary.json").write_bytes(b'{"a": "\xff\xfe"}')
    refused(aiosrun("emit", "thing.happened", "--data", "@binary.json"), 1,
            "binary.json: byte 7: 0xff is not UTF-8")
    done = subprocess.run([os.fsencode(part) for part in _aiosrun_command()]
                          + [b"emit", b"thing.happened", b"--data", b'"\xff"'],
                          cwd=ws, capture_output=True, text=True, timeout=60)
    refused(done, 1, "byte 0xff is not UTF-8")
    assert not any((ws / ".aios" / "log").glob("*.jsonl")) or b"thing.happened" not in b"".join(
        p.read_bytes() for p in (ws / ".aios" / "log").glob("*.jsonl"))


def test_init_into_an_impossible_place(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    refused(aiosrun("init", str(tmp_path / "file" / "ws"), "--no-git"), 1,
            "cannot create the workspace in")


def test_serve_interval_must_be_a_number(aiosrun: Runner, ws: Path) -> None:
    refused(aiosrun("serve", "--once", "--interval", "nan"), 2, "not a number of seconds")
    refused(aiosrun("serve", "--once", "--interval", "inf"), 2, "--interval")


def test_a_broken_adapter_class_is_reported_where_it_is(aiosrun: Runner, ws: Path) -> None:
    (ws / "adapters").mkdir()
    (ws / "adapters" / "five.py").write_text(
        "from aiosrun.adapters.base import Adapter\n\n\nclass Five(Adapter):\n"
        "    name = 'five'\n    actions = 5\n")
    for args in (("adapters",), ("validate",), ("apply",)):
        refused(aiosrun(*args), 1, "five.py:4: adapter class Five: actions is int")
    assert aiosrun("runs").returncode == 0  # reading the runs needs no adapter


def test_an_adapter_that_exits_at_import_is_reported(aiosrun: Runner, ws: Path) -> None:
    (ws / "adapters").mkdir()
    (ws / "adapters" / "quits.py").write_text("import sys\n\nsys.exit(7)\n")
    for args in (("adapters",), ("validate",)):
        refused(aiosrun(*args), 1, "quits.py:3: cannot load adapter: it calls sys.exit(7)")
    assert aiosrun("runs").returncode == 0  # reading the runs needs no adapter


def test_a_list_root_is_reported_at_its_line(aiosrun: Runner, ws: Path) -> None:
    (ws / "playbooks" / "list.yaml").write_text("# a comment\n\n- a\n- b\n")
    refused(aiosrun("validate", "playbooks/list.yaml"), 1, "list.yaml:3:1")
