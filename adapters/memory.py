"""``memory``: the playbook's door to the hybrid memory store (search, remember, forget).

The runtime lends each run a :class:`~aiosrun.adapters.base.MemoryService` limited to the
domains the playbook declares in ``memory:``; a call for another domain is a permanent
error. The store's work (Tantivy, usearch, embedding) blocks, so it runs in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .base import Action, Adapter, CallContext, PermanentError

_DOMAIN = {"type": "string", "pattern": "^[a-z][a-z0-9_-]*$"}
_LAYER = {"enum": ["working", "episodic", "knowledge"]}
_HIT = {"type": "object", "properties": {
    "id": {"type": "string"}, "text": {"type": "string"}, "score": {"type": "number"},
    "domain": {"type": "string"}, "layer": {"type": "string"}, "metadata": {"type": "object"},
    "found_by": {"type": "array", "items": {"enum": ["bm25", "vector"]}}}}


class MemoryAdapter(Adapter):
    name = "memory"
    description = "Search, remember and forget in the workspace's hybrid memory."
    actions: ClassVar[Mapping[str, Action]] = {
        "search": Action("Hybrid (BM25 + vector) search in one domain: of facts with a "
                         "key, the current one (or the one valid at `as_of`).", {
            "type": "object", "required": ["domain", "query"], "additionalProperties": False,
            "properties": {"domain": _DOMAIN, "query": {"type": "string"}, "layer": _LAYER,
                           "k": {"type": "integer", "minimum": 1, "maximum": 100},
                           "mode": {"enum": ["hybrid", "bm25", "vector"]},
                           "filters": {"type": "object"},
                           "as_of": {"type": "string", "minLength": 1}}},
            {"type": "object", "properties": {"hits": {"type": "array", "items": _HIT}}}),
        "remember": Action("Stores an item (an upsert by id; without an id, one is derived "
                           "from the step's idempotency key, so a retry stores it once). "
                           "With a `key`, it supersedes the item that had the key.", {
            "type": "object", "required": ["domain", "text"], "additionalProperties": False,
            "properties": {"domain": _DOMAIN, "text": {"type": "string", "minLength": 1},
                           "layer": _LAYER, "id": {"type": "string", "minLength": 1},
                           "key": {"type": "string", "minLength": 1},
                           "metadata": {"type": "object"}}},
            {"type": "object", "properties": {"id": {"type": "string"}}}),
        "forget": Action("Removes an item from every index and the journal, for good.", {
            "type": "object", "required": ["domain", "id"], "additionalProperties": False,
            "properties": {"domain": _DOMAIN, "id": {"type": "string"}}},
            {"type": "object", "properties": {"forgotten": {"type": "integer"}}}),
    }

    async def call(self, action: str, args: Mapping[str, Any],
                   ctx: CallContext) -> Mapping[str, Any]:
        import trio  # here: `aiosrun validate` loads this module only for its schemas

        memory = ctx.memory
        if memory is None:
            raise PermanentError(f"memory.{action}: no memory store in this context")
        if action == "search":
            return await trio.to_thread.run_sync(memory.search, args)
        if action == "remember":
            return await trio.to_thread.run_sync(memory.remember, args, ctx.idempotency_key)
        return await trio.to_thread.run_sync(memory.forget, args)
