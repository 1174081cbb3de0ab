"""``aiosrun memory``: add, search, eval, forget, stats and rebuild the workspace's memory.

Registered on the group in :mod:`cli`; tantivy, usearch and numpy are imported inside the
commands.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from aiosrun.runtime.cli.app import Context, cli, fail
from aiosrun.runtime.cli.render import FORMAT, session

T = TypeVar("T")
LAYER = click.Choice(["working", "episodic", "knowledge"])
MODE = click.Choice(["hybrid", "bm25", "vector"])


@cli.group()
def memory() -> None:
    """The hybrid memory store (Tantivy BM25 + usearch vectors, per domain)."""


def _with_store(obj: Context, work: Callable[[Any], T]) -> T:
    """Do ``work`` on the workspace's memory store (``engine.memory``) in one session;
    a request the store refuses ends the command with its reason."""
    from aiosrun.runtime.memory.store import MemoryRequestError

    async def run(engine: Any) -> T:
        try:
            return work(engine.memory.store())
        except (MemoryRequestError, ValueError) as exc:
            fail(str(exc))

    return session(obj, run)


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Lines of a JSONL file; a bad line is a positioned error, never a traceback."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        fail(f"{path}: {exc.strerror}")
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield number, _json_object(line, f"{path}:{number}")


def _moment(value: Any, where: str) -> dt.datetime | None:
    """An item's ``time`` from a JSONL line (RFC 3339), so an import keeps when facts held."""
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        fail(f"{where}: \"time\" must be an RFC 3339 moment, not {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _json_object(text: str | None, where: str) -> dict[str, Any]:
    """A JSON object from an option or a JSONL line; ``where`` (``FILE:LINE`` or the option)
    positions the error."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        fail(f"{where}:{getattr(exc, 'colno', 1)}: not JSON: {exc}")
    if not isinstance(value, dict):
        fail(f"{where}:1: expected a JSON object")
    return value


@memory.command()
@click.argument("text", required=False)
@click.option("--file", "items_file", type=click.Path(path_type=Path, dir_okay=False),
              help='A JSONL file, one item per line: {"id"?, "text", "domain"?, "layer"?, '
                   '"metadata"?}.')
@click.option("--domain", "-d", default=None, help="Domain (default: the first one).")
@click.option("--layer", "-l", type=LAYER, default="knowledge", show_default=True)
@click.option("--id", "item_id", help="The item's id (default: derived from its text).")
@click.option("--metadata", help="A JSON object of metadata.")
@click.option("--key", "fact_key", help="A fact's key: the item supersedes the one that had it.")
@click.pass_obj
def add(obj: Context, text: str | None, items_file: Path | None, domain: str | None,
        layer: str, item_id: str | None, metadata: str | None, fact_key: str | None) -> None:
    """Remember TEXT, or every item of --file (in one batch)."""
    from aiosrun.runtime.memory.store import new_item

    if (text is None) == (items_file is None):
        fail("give either TEXT or --file ITEMS.jsonl", 2)

    def remember(store: Any) -> list[str]:
        default_domain = domain or store.domains[0]
        items = []
        if text is not None:
            meta = _json_object(metadata, "--metadata")
            items.append(new_item(text, default_domain, layer, item_id, meta, source="cli",
                                  key=fact_key))
        else:
            assert items_file is not None
            for number, entry in _jsonl(items_file):
                if not isinstance(entry.get("text"), str) or not entry["text"]:
                    fail(f"{items_file}:{number}:1: expected a non-empty \"text\"")
                meta = entry.get("metadata") or {}
                if not isinstance(meta, dict):
                    fail(f"{items_file}:{number}:1: \"metadata\" must be an object")
                if entry.get("key") is not None and not isinstance(entry["key"], str):
                    fail(f"{items_file}:{number}:1: \"key\" must be a string")
                when = _moment(entry.get("time"), f"{items_file}:{number}:1")
                items.append(new_item(entry["text"], entry.get("domain") or default_domain,
                                      entry.get("layer") or layer, entry.get("id"), meta,
                                      source=f"file:{items_file.name}",
                                      key=entry.get("key"), now=when))
        ids: list[str] = store.remember(items)
        return ids

    ids = _with_store(obj, remember)
    click.echo(ids[0] if len(ids) == 1 else f"{len(ids)} items remembered")



@memory.command()
@click.argument("query", required=False)
@click.option("--batch", "batch_file", type=click.Path(path_type=Path, dir_okay=False),
              help='A JSONL file, one query per line: {"query", "domain"?, "k"?, "mode"?}.')
@click.option("--domain", "-d", help="Only this domain (default: all).")
@click.option("--layer", "-l", type=LAYER, help="Only this layer.")
@click.option("--mode", "-m", type=MODE, default="hybrid", show_default=True)
@click.option("--k", "-k", "k", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--where", "where", help="Metadata filters as a JSON object.")
@click.option("--as-of", "as_of", help="Facts as they were at this moment (RFC 3339).")
@FORMAT
@click.pass_obj
def search(obj: Context, query: str | None, batch_file: Path | None, domain: str | None,
           layer: str | None, mode: str, k: int, where: str | None, as_of: str | None,
           fmt: str) -> None:
    """Search the memory: BM25, vectors, or both fused (hybrid)."""

    if (query is None) == (batch_file is None):
        fail("give either QUERY or --batch QUERIES.jsonl", 2)
    filters = _json_object(where, "--where")
    def find(store: Any) -> list[Any] | None:
        if batch_file is not None:
            for number, line in _jsonl(batch_file):
                if not isinstance(line.get("query"), str):
                    fail(f"{batch_file}:{number}:1: expected a \"query\" string")
                found = store.search(line["query"],
                                     [line["domain"]] if line.get("domain") else
                                     ([domain] if domain else None), layer,
                                     int(line.get("k", k)), filters, line.get("mode", mode),
                                     line.get("as_of", as_of))
                click.echo(json.dumps({"query": line["query"],
                                       "hits": [h.to_json() for h in found]},
                                      ensure_ascii=False))
            return None
        assert query is not None
        hits: list[Any] = store.search(query, [domain] if domain else None, layer, k, filters,
                                       mode, as_of)
        return hits

    hits = _with_store(obj, find)
    if hits is None:
        return
    if fmt == "json":
        click.echo(json.dumps([h.to_json() for h in hits], indent=2, ensure_ascii=False))
        return
    for rank, hit in enumerate(hits, 1):
        found = "+".join(hit.found_by)
        click.echo(f"{rank}. [{hit.item.domain}/{hit.item.layer}] {hit.item.id}  "
                   f"{hit.score:.4f} ({found})\n   {hit.item.text[:200]}")
    if not hits:
        click.echo("no hits")


@memory.command(name="eval")
@click.argument("qrels_file", metavar="QRELS.jsonl|LOCOMO", type=click.Path(path_type=Path))
@click.option("--k", "-k", "k", type=click.IntRange(1, 100), default=5, show_default=True)
@FORMAT
@click.pass_obj
def eval_command(obj: Context, qrels_file: Path, k: int, fmt: str) -> None:
    """Measure retrieval on your own questions: recall@k, MRR and nDCG@10 for each mode.

    One line per question: {"query", "domain"?, "relevant": [ids]}. Or LoCoMo
    conversations (a JSON file or a folder of them): evidence retrieval, each in a
    temporary store with this workspace's embedder and fusion, overall and per category."""
    from aiosrun.runtime.memory.evaluation import Qrel, evaluate
    from aiosrun.runtime.memory.locomo import is_locomo

    if is_locomo(qrels_file):
        _locomo_eval(obj, qrels_file, k, fmt)
        return
    qrels = []
    for number, line in _jsonl(qrels_file):
        relevant = line.get("relevant")
        if not isinstance(line.get("query"), str) or not isinstance(relevant, list) or \
                not relevant:
            fail(f"{qrels_file}:{number}:1: expected {{\"query\": ..., \"relevant\": [ids]}}")
        qrels.append(Qrel(line["query"], tuple(str(i) for i in relevant), line.get("domain")))
    results = _with_store(obj, lambda store: evaluate(store, qrels, k))
    if fmt == "json":
        click.echo(json.dumps(results, indent=2))
        return
    click.echo(f"{len(qrels)} questions\n{'mode':<8} {f'recall@{k}':>10} {'MRR':>8} "
               f"{'nDCG@10':>8}")
    for mode, row in results.items():
        click.echo(f"{mode:<8} {row[f'recall@{k}']:>10.3f} {row['mrr']:>8.3f} "
                   f"{row['ndcg@10']:>8.3f}")


def _locomo_eval(obj: Context, path: Path, k: int, fmt: str) -> None:
    from aiosrun.runtime.memory.evaluation import locomo
    from aiosrun.runtime.memory.locomo import LocomoFormatError, load_all
    from aiosrun.runtime.memory.store import MemoryStore

    try:
        conversations = load_all([path])
    except LocomoFormatError as exc:
        fail(str(exc))
    ks = sorted({k, 10})
    results = _with_store(obj, lambda store: locomo(conversations, lambda folder, domain: (
        MemoryStore(folder, store.embedder, [domain], store.fusion)), ks=ks))
    if fmt == "json":
        click.echo(json.dumps(results, indent=2))
        return
    count = sum(len(c.questions) for c in conversations)
    click.echo(f"{len(conversations)} conversations, {count} questions (recall@{k})")
    categories = list(next(iter(results.values()))["by_category"])
    click.echo(f"{'mode':<8} {'overall':>8}" + "".join(f" {'cat ' + c:>7}" for c in categories))
    for mode, row in results.items():
        click.echo(f"{mode:<8} {row['overall'][f'recall@{k}']:>8.3f}" + "".join(
            f" {row['by_category'][c][f'recall@{k}']:>7.3f}" for c in categories))


@memory.command()
@click.argument("ids", nargs=-1)
@click.option("--domain", "-d", help="Only in this domain (default: all).")
@click.option("--where", "where", help="Forget every item whose metadata matches this JSON "
                                       "object.")
@click.option("--layer", "-l", type=LAYER, help="With --where: only this layer.")
@click.pass_obj
def forget(obj: Context, ids: tuple[str, ...], domain: str | None, where: str | None,
           layer: str | None) -> None:
    """Erase items for good: from both indexes and the journal."""

    filters = _json_object(where, "--where")
    if not ids and not filters:
        fail("give item ids or --where JSON", 2)
    count = _with_store(obj, lambda store: store.forget(
        ids, [domain] if domain else None, layer if filters else None, filters or None))
    click.echo(f"{count} item(s) forgotten")


@memory.command()
@FORMAT
@click.pass_obj
def stats(obj: Context, fmt: str) -> None:
    """Items per domain and layer, disk use, the embedder and the fusion weights."""
    result = _with_store(obj, lambda store: store.stats())
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"embedder {result['embedder']}; fusion {result['fusion']} "
               f"(bm25 {result['weights']['bm25']}, vector {result['weights']['vector']})")
    for name, row in result["domains"].items():
        layers = ", ".join(f"{k} {v}" for k, v in row["layers"].items())
        click.echo(f"{name:<12} {row['items']:>8} items ({layers}), {row['bytes']:,} bytes")


@memory.command()
@click.pass_obj
def rebuild(obj: Context) -> None:
    """Rebuild both indexes of every domain from the journals (re-embedding every item)."""
    _with_store(obj, lambda store: store.rebuild())
    click.echo("memory rebuilt")
    sys.stdout.flush()
