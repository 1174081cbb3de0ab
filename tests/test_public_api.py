"""The names each package promises in ``__all__`` are what it exposes."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["aiosrun.dsl", "aiosrun.runtime"])
def test_all_names_resolve(module: str) -> None:
    package = importlib.import_module(module)
    for name in package.__all__:
        assert getattr(package, name) is not None
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018


def test_importing_one_submodule_stays_light() -> None:
    code = ("import sys, aiosrun.dsl.errors; "
            "print(sorted(m for m in ('jsonschema', 'lark', 'ruamel') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]"
