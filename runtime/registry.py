"""Finding adapters: the ``aiosrun.adapters`` entry-point group (the built-ins register there
too). Actions are looked up as ``ADAPTER.ACTION``."""

from __future__ import annotations

from importlib.metadata import entry_points

from aiosrun.adapters.base import Action, Adapter, PermanentError


class Registry:
    def __init__(self, adapters: dict[str, Adapter]) -> None:
        self.adapters = adapters

    @classmethod
    def discover(cls) -> Registry:
        found: dict[str, Adapter] = {}
        for entry in entry_points(group="aiosrun.adapters"):
            adapter_class = entry.load()
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
