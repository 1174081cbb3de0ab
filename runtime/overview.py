"""Read-only views of a workspace for the operator's page: applied playbooks and their
versions, a version's compiled text for diffs, and model spend per day and playbook.

Folded from the same projections as everything else (the workspace state, run states), so
the page shows what ``aiosrun`` commands show.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from aiosrun.runtime.workspace import Workspace


def playbooks(ws: Workspace) -> list[dict[str, Any]]:
    """Each playbook ever applied: its current digest (None once removed) and its versions,
    oldest first."""
    state = ws.workspace_state()
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for version in sorted(state.versions.values(), key=lambda v: v.seq):
        by_name[version.name].append({"digest": version.digest, "version": version.digest[:12],
                                      "source": version.source, "commit": version.commit,
                                      "seq": version.seq})
    return [{"name": name, "current": state.current.get(name), "versions": versions}
            for name, versions in sorted(by_name.items())]


def version_text(ws: Workspace, digest: str) -> str | None:
    """A version's compiled playbook as YAML (what a diff of two versions compares), or None
    for an unknown digest. The log keeps each version's IR, not its file: this is the IR
    read back as plain values, expressions as ``${{ }}`` again, positions and empty
    settings left out."""
    version = ws.workspace_state().versions.get(digest)
    if version is None:
        return None
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    out = io.StringIO()
    yaml.dump(plain(ws.version_ir(digest)), out)
    return out.getvalue()


def plain(node: Any) -> Any:
    """Encoded IR as the values a playbook author wrote."""
    if isinstance(node, list):
        return [plain(v) for v in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("$")
    if kind == "Const":
        return plain(node.get("value"))
    if kind == "Expr":
        return "${{ " + str(node.get("source")) + " }}"
    if kind == "Interp":
        return "".join(p if isinstance(p, str) else str(plain(p)) for p in node["parts"])
    if kind == "MapOf":
        return {str(k): plain(v) for k, v in node.get("items") or ()}
    if kind in ("FrozenDict",):
        return plain(node.get("items"))
    if kind in ("ListOf",):
        return plain(node.get("items"))
    out = {str(k): plain(v) for k, v in node.items()
           if k not in ("$", "span", "digest") and v not in (None, [], {})}
    return {k: v for k, v in out.items() if v not in (None, [], {})}


def spend(ws: Workspace) -> dict[str, Any]:
    """Model spend (USD) per UTC day, and per playbook and day from the runs' costs."""
    state = ws.workspace_state()
    per_playbook: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for summary in state.runs.values():
        cost = float(ws.run_state(summary.id).cost_usd or 0.0)
        if cost:
            per_playbook[summary.playbook][summary.started_at[:10]] += cost
    budget = (ws.settings.data.get("policy") or {}).get("budget") or {}
    return {"days": dict(sorted(state.spend.items())),
            "playbooks": {name: dict(sorted(days.items()))
                          for name, days in sorted(per_playbook.items())},
            "budget": dict(budget)}
