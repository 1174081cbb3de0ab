"""``memory``: the playbook's door to the hybrid memory store (search, remember, forget).

The actions and their arguments are declared now, so playbooks validate against them; the
store itself (Tantivy + usearch per domain) comes in a later version, and until then a call
fails with a permanent error that says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .base import Action, Adapter, CallContext, PermanentError

_DOMAIN = {"type": "string", "pattern": "^[a-z][a-z0-9_-]*$"}
_LAYER = {"enum": ["working", "episodic", "knowledge"]}


class MemoryAdapter(Adapter):
    name = "memory"
    description = "Search, remember and forget in the workspace's hybrid memory."
    actions: ClassVar[Mapping[str, Action]] = {
        "search": Action("Hybrid (BM25 + vector) search in one domain.", {
            "type": "object", "required": ["domain", "query"], "additionalProperties": False,
            "properties": {"domain": _DOMAIN, "query": {"type": "string"}, "layer": _LAYER,
                           "k": {"type": "integer", "minimum": 1, "maximum": 100},
                           "mode": {"enum": ["hybrid", "bm25", "vector"]},
                           "filters": {"type": "object"}}}),
        "remember": Action("Stores an item.", {
            "type": "object", "required": ["domain", "text"], "additionalProperties": False,
            "properties": {"domain": _DOMAIN, "text": {"type": "string"}, "layer": _LAYER,
                           "id": {"type": "string"}, "metadata": {"type": "object"}}}),
        "forget": Action("Removes an item from every index, for good.", {
            "type": "object", "required": ["domain", "id"], "additionalProperties": False,
            "properties": {"domain": _DOMAIN, "id": {"type": "string"}}}),
    }

    async def call(self, action: str, args: Mapping[str, Any],
                   ctx: CallContext) -> Mapping[str, Any]:
        raise PermanentError(f"memory.{action}: the memory store is not part of this version "
                             "of aiosrun yet")
