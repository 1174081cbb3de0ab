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
from collections.abc import Mapping
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
            for adapter_class in _mcp_adapters(workspace):
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


def _mcp_adapters(root: Path) -> list[type[Adapter]]:
    """One adapter per ``mcp`` server of aios.yaml, with its cached tools as actions."""
    settings = root / "aios.yaml"
    if not settings.is_file():
        return []
    from aiosrun.adapters.mcp import server_adapter
    from aiosrun.dsl.errors import PlaybookError
    from aiosrun.dsl.loader import load_file

    try:
        data = load_file(settings).data
    except PlaybookError:
        return []  # validate reports the broken file
    servers = data.get("mcp")
    if not isinstance(servers, dict):
        return []
    http = ((data.get("adapters") or {}).get("http") or {})
    allowed = tuple(str(h) for h in http.get("allow_hosts") or ())
    return [server_adapter(str(name), server, root / ".aios", allowed)
            for name, server in servers.items() if isinstance(server, dict)]


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
        except SystemExit as exc:  # it would end every command silently with its code
            raise AdapterLoadError(f"{path}:{_line_in(exc, path)}: cannot load adapter: it "
                                   f"calls sys.exit({exc.code!r}) at import") from None
        except Exception as exc:  # the operator's code: report where, never a traceback
            raise AdapterLoadError(f"{path}:{_line_in(exc, path)}: cannot load adapter: "
                                   f"{type(exc).__name__}: {exc}") from None
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, Adapter) and value is not Adapter
                    and isinstance(getattr(value, "name", None), str)
                    and value.__module__ == module_name):
                _check_adapter(value, path)
                found.append(value)
    return found


def _line_in(exc: BaseException, path: Path) -> int:
    """The line of ``path`` the exception passed through last (1 if none)."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename == str(path) and f.lineno]
    if isinstance(exc, SyntaxError) and exc.lineno:
        return exc.lineno
    return frames[-1].lineno or 1 if frames else 1


def _check_adapter(adapter_class: type[Adapter], path: Path) -> None:
    """An adapter class whose ``actions`` is not a mapping of :class:`Action` would break
    every command that lists or checks actions; refuse it where it is defined."""
    import inspect

    actions = getattr(adapter_class, "actions", None)
    problem = None
    if not isinstance(actions, Mapping):
        problem = f"actions is {type(actions).__name__}, not a mapping of name -> Action"
    else:
        wrong = [name for name, action in actions.items()
                 if not isinstance(name, str) or not isinstance(action, Action)]
        if wrong:
            problem = f"action {wrong[0]!r} is not an Action"
    if problem is not None:
        try:
            line = inspect.getsourcelines(adapter_class)[1]
        except (OSError, TypeError):
            line = 1
        raise AdapterLoadError(f"{path}:{line}: adapter class {adapter_class.__name__}: "
                               f"{problem}")
