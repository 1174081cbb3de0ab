"""The pre-commit hooks a playbook repository uses: they match the right files and pass on
valid playbooks, fail on broken ones."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from ruamel.yaml import YAML

from .conftest import Runner

ROOT = Path(__file__).resolve().parents[2]


def hooks() -> dict[str, dict[str, str]]:
    return {h["id"]: h for h in YAML(typ="safe").load(ROOT / ".pre-commit-hooks.yaml")}


def test_validate_hook_matches_playbooks_and_workspace_only() -> None:
    pattern = re.compile(hooks()["aiosrun-validate"]["files"])
    assert pattern.search("playbooks/onboarding.yaml")
    assert pattern.search("aios.yaml")
    assert not pattern.search(".pre-commit-config.yaml")
    assert not pattern.search("examples/inputs.yaml")


def test_hook_entries_run(aiosrun: Runner, tmp_path: Path) -> None:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    good = (ROOT / "playbooks" / "customer-onboarding.yaml").read_text()
    (playbooks / "ok.yaml").write_text(good)
    for hook_id in ("aiosrun-validate", "aiosrun-fmt"):
        command = shlex.split(hooks()[hook_id]["entry"])
        assert command[0] == "aiosrun"
        assert aiosrun(*command[1:], "playbooks/ok.yaml").returncode == 0
    (playbooks / "ok.yaml").write_text(good.replace("gate:", "gates:"))
    assert aiosrun("validate", "playbooks/ok.yaml").returncode == 1


def test_hidden_folders_are_skipped(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "playbooks" / ".drafts").mkdir(parents=True)
    (tmp_path / "playbooks" / ".drafts" / "wip.yaml").write_text("broken: [")
    good = (ROOT / "playbooks" / "content-cadence.yaml").read_text()
    (tmp_path / "playbooks" / "good.yaml").write_text(good)
    done = aiosrun("validate", "playbooks")
    assert done.returncode == 0, done.stdout
