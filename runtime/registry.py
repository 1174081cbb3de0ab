"""Finding adapters: the ``aiosrun.adapters`` entry-point group (the built-ins register there
too) and the workspace's own ``adapters/*.py``. Actions are looked up as ``ADAPTER.ACTION``.

A workspace adapter is any :class:`~aiosrun.adapters.base.Adapter` subclass with a ``name``
defined in a file of the workspace's ``adapters/`` folder; it may replace a built-in of the
same name (the operator's folder wins).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from aiosrun.adapters.base import Action, Adapter, PermanentError
from aiosrun.dsl.errors import AiosrunError


class AdapterLoadError(AiosrunError):
    pass


class Registry:
    def __init__(self, adapters: dict[str, Adapter]) -> None:
        self.adapters = adapters

    @classmethod
    def discover(cls, workspace: Path | None = None) -> Registry:
        found: dict[str, Adapter] = {}
        for adapter_class in _installed():
            found[adapter_class.name] = adapter_class()
        if workspace is not None:
            for adapter_class in _workspace_adapters(workspace / "adapters"):
                found[adapter_class.name] = adapter_class()
        return cls(found)

    def action(self, uses: str) -> tuple[Adapter, Action, str]:
        adapter_name, _, action_name = uses.partition(".")
        adapter = self.adapters.get(adapter_name)
        if adapter is None:
            known = ", ".join(sorted(self.adapters))
            raise PermanentError(f"unknown adapter '{adapter_name}' (installed: {known})")
        action = adapter.actions.get(action_name)
        if action is None:
            known = ", ".join(sorted(adapter.actions))
            raise PermanentError(f"'{adapter_name}' has no action '{action_name}' "
                                 f"(it has: {known})")
        return adapter, action, action_name

    def catalog(self) -> dict[str, dict[str, Any]]:
        """``ADAPTER.ACTION`` -> argument schema, for checking playbooks at validate."""
        return {f"{name}.{action_name}": dict(action.args)
                for name, adapter in self.adapters.items()
                for action_name, action in adapter.actions.items()}


@functools.cache
def _installed() -> tuple[type[Adapter], ...]:
    """The installed adapters' classes, found once per process (scanning the entry points
    costs about 20 ms, and what is installed does not change while a process runs)."""
    return tuple(entry.load() for entry in entry_points(group="aiosrun.adapters"))


def _workspace_adapters(folder: Path) -> list[type[Adapter]]:
    found: list[type[Adapter]] = []
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.py")):
        module_name = f"aiosrun_workspace_adapters.{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # the operator's code: report where, never a traceback
            raise AdapterLoadError(f"{path}: cannot load adapter: {type(exc).__name__}: "
                                   f"{exc}") from None
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, Adapter) and value is not Adapter
                    and isinstance(getattr(value, "name", None), str)
                    and value.__module__ == module_name):
                found.append(value)
    return found
