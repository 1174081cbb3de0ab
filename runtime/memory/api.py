"""``engine.memory``: the workspace's memory for a program, the CLI and the HTTP API.

The store opens on first use (tantivy, usearch and numpy are imported then, never by a
command that does not touch memory). Errors in a request (an unknown domain, layer or
mode) are :class:`BadRequest`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiosrun.runtime.errors import BadRequest

if TYPE_CHECKING:
    from aiosrun.runtime.memory.evaluation import Qrel
    from aiosrun.runtime.memory.shard import MemoryItem
    from aiosrun.runtime.memory.store import Hit, MemoryStore
    from aiosrun.runtime.workspace import Workspace


class MemoryAPI:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def store(self) -> MemoryStore:
        """The opened store, caught up with finished runs and knowledge files."""
        from aiosrun.runtime.memory.store import MemoryRequestError

        try:
            store: MemoryStore = self._ws.memory()
        except (MemoryRequestError, RuntimeError) as exc:
            raise BadRequest(str(exc)) from None
        return store

    @property
    def domains(self) -> tuple[str, ...]:
        return self.store().domains

    async def add(self, text: str, *, domain: str | None = None, layer: str = "knowledge",
                  id: str | None = None, metadata: Mapping[str, Any] | None = None,
                  source: str = "api", key: str | None = None) -> str:
        """Remember one text; returns its id (derived from the text unless given). With a
        ``key``, it supersedes the item that had that key."""
        from aiosrun.runtime.memory.store import new_item

        item = new_item(text, domain or self.domains[0], layer, id, metadata, source=source,
                        key=key)
        return (await self.add_many([item]))[0]

    async def add_many(self, items: Sequence[MemoryItem]) -> list[str]:
        """Remember items in one batch per domain."""
        from aiosrun.runtime.memory.store import MemoryRequestError

        try:
            return self.store().remember(items)
        except MemoryRequestError as exc:
            raise BadRequest(str(exc)) from None

    async def search(self, query: str, *, domains: Sequence[str] | None = None,
                     layer: str | None = None, k: int = 5,
                     filters: Mapping[str, Any] | None = None,
                     mode: str = "hybrid", as_of: str | None = None) -> list[Hit]:
        """BM25, vectors, or both fused (``hybrid``), best first; facts as of now, or as
        of ``as_of``."""
        from aiosrun.runtime.memory.store import MemoryRequestError

        try:
            return self.store().search(query, domains, layer, k, filters, mode, as_of)
        except (MemoryRequestError, ValueError) as exc:
            raise BadRequest(str(exc)) from None

    async def forget(self, ids: Iterable[str] = (), *, domains: Sequence[str] | None = None,
                     layer: str | None = None,
                     filters: Mapping[str, Any] | None = None) -> int:
        """Erase items for good, by id or by metadata filters; returns how many."""
        from aiosrun.runtime.memory.store import MemoryRequestError

        try:
            return self.store().forget(ids, domains, layer, filters)
        except (MemoryRequestError, ValueError) as exc:
            raise BadRequest(str(exc)) from None

    async def stats(self) -> dict[str, Any]:
        """Items per domain and layer, disk use, the embedder and the fusion weights."""
        return self.store().stats()

    async def rebuild(self) -> None:
        """Rebuild both indexes of every domain from the journals."""
        self.store().rebuild()

    async def evaluate(self, qrels: Sequence[Qrel], k: int = 5) -> dict[str, dict[str, Any]]:
        """recall@k, MRR and nDCG@10 per search mode on the operator's own questions."""
        from aiosrun.runtime.memory.evaluation import evaluate

        return evaluate(self.store(), qrels, k)
