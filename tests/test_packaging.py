"""A built wheel carries the package data (schemas, templates, grammar) and the console script,
so `pip install .` works as well as the editable install the suite runs from."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_has_package_data_and_entry_point(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("aiosrun-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "aiosrun = aiosrun.runtime.cli:main" in archive.read(entry_points).decode()
        archive.extractall(tmp_path / "site")
    for expected in ["aiosrun/schemas/playbook.schema.json",
                     "aiosrun/schemas/workspace.schema.json",
                     "aiosrun/playbooks/customer-onboarding.yaml",
                     "aiosrun/playbooks/content-cadence.yaml",
                     "aiosrun/playbooks/billing-reconciliation.yaml",
                     "aiosrun/dsl/loader.py", "aiosrun/runtime/cli/__init__.py",
                     "aiosrun/dsl/py.typed",
                     "aiosrun/runtime/starter/aios.yaml",
                     "aiosrun/runtime/starter/gitignore",
                     "aiosrun/runtime/starter/pre-commit-config.yaml",
                     "aiosrun/runtime/starter/examples/payments.csv",
                     "aiosrun/runtime/starter/cassettes/small.jsonl",
                     "aiosrun/runtime/starter/knowledge/products/plans.md",
                     "aiosrun/runtime/notify/notifier.py",
                     "aiosrun/runtime/server/ui/templates/inbox.html",
                     "aiosrun/runtime/server/ui/static/ui.js",
                     "aiosrun/runtime/server/ui/static/ui.css"]:
        assert expected in names, expected
    assert not any(n.startswith(("aiosrun/__init__", "dsl/", "runtime/", "tests/"))
                   for n in names)
    # Read the data the way the code does, from the unpacked wheel only (-S: no site-packages,
    # so the editable install of this checkout cannot answer instead).
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from importlib import resources;"
             "print(sorted(p.name for p in resources.files('aiosrun.playbooks').iterdir()"
             " if p.name.endswith('.yaml')));"
             "print(len(resources.files('aiosrun.schemas').joinpath("
             "'playbook.schema.json').read_text()) > 1000)")
    done = subprocess.run([sys.executable, "-S", "-c", probe, str(tmp_path / "site")],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.splitlines() == [
        "['billing-reconciliation.yaml', 'content-cadence.yaml', 'customer-onboarding.yaml']",
        "True",
    ]
