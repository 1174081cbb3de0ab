"""Agents at validate time: ``kind: Agent`` files, inline ``agent:`` bodies, and the checks
that tie an agent to the workspace: its tools exist, its models are declared, and the memory
domains it searches are declared by every playbook that uses it.

An agent is checked where it is written (its own file, or the step of an inline body); what
depends on the playbook that uses it (memory domains) is reported at that playbook's
``agent:`` step.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from .check_adapters import Catalog
from .diagnostics import Diagnostic, did_you_mean, quote_list
from .loader import Document, JsonPath
from .schema import check_inline_agent, check_schema
from .steps import iter_steps
from .templates import has_expression

STEP_KEYS = frozenset({"task", "context"})


@dataclass
class Surroundings:
    """What an agent's tools may name: actions, model aliases, playbooks, MCP servers."""

    catalog: Catalog | None = None
    models: Collection[str] | None = None
    playbooks: Collection[str] | None = None
    mcp: Collection[str] = field(default_factory=tuple)
    agents_known: bool = True  # False outside a workspace: an agent name is not checked


def is_agent(doc: Document) -> bool:
    return doc.data.get("kind") == "Agent"


def check_agent_file(doc: Document, around: Surroundings) -> list[Diagnostic]:
    problems = check_schema(doc, "agent")
    return problems + check_agent_body(doc, (), around)


def check_agent_body(doc: Document, path: JsonPath, around: Surroundings) -> list[Diagnostic]:
    """Tools that exist and model aliases that are declared, at their line."""
    body = _at(doc.data, path)
    if not isinstance(body, dict):
        return []
    out: list[Diagnostic] = []
    if "model" in body and "tiers" in body:
        out.append(Diagnostic.at(doc.span((*path, "tiers"), key=True), "agent",
                                 "give either 'model' or 'tiers', not both"))
    named: list[tuple[Any, JsonPath]] = [(body.get("model"), (*path, "model"))]
    tiers = body.get("tiers")
    if isinstance(tiers, list):
        named += [(t.get("model"), (*path, "tiers", i, "model"))
                  for i, t in enumerate(tiers) if isinstance(t, dict)]
    if around.models:
        for alias, at in named:
            if isinstance(alias, str) and not has_expression(alias) \
                    and alias not in around.models:
                out.append(Diagnostic.at(
                    doc.span(at), "unknown-model",
                    f"unknown model alias '{alias}' (aios.yaml models: "
                    f"{quote_list(sorted(around.models))}){did_you_mean(alias, around.models)}"))
    tools = body.get("tools")
    if isinstance(tools, list):
        for index, tool in enumerate(tools):
            if isinstance(tool, dict):
                out += _check_tool(doc, tool, (*path, "tools", index), around)
    return out


def _check_tool(doc: Document, tool: dict[str, Any], path: JsonPath,
                around: Surroundings) -> list[Diagnostic]:
    uses, playbook, mcp = tool.get("uses"), tool.get("playbook"), tool.get("mcp")
    if isinstance(uses, str) and around.catalog is not None and "." in uses \
            and uses not in around.catalog and uses.split(".")[0] not in around.mcp:
        names = list(around.catalog)
        return [Diagnostic.at(doc.span((*path, "uses")), "tool",
                              f"unknown tool action '{uses}'{did_you_mean(uses, names)}")]
    if isinstance(playbook, str) and around.playbooks is not None \
            and playbook not in around.playbooks:
        return [Diagnostic.at(doc.span((*path, "playbook")), "tool",
                              f"unknown playbook '{playbook}' for a tool"
                              f"{did_you_mean(playbook, around.playbooks)}")]
    if isinstance(mcp, str):
        server = mcp.split(".")[0]
        if server not in around.mcp:
            declared = quote_list(sorted(around.mcp)) or "none"
            return [Diagnostic.at(doc.span((*path, "mcp")), "tool",
                                  f"unknown MCP server '{server}' (aios.yaml mcp: {declared})"
                                  f"{did_you_mean(server, around.mcp)}")]
        if "." in mcp and around.catalog is not None and any(
                a.startswith(f"{server}.") for a in around.catalog) and mcp not in around.catalog:
            return [Diagnostic.at(doc.span((*path, "mcp")), "tool",
                                  f"MCP server '{server}' has no tool "
                                  f"'{mcp.split('.', 1)[1]}' (as last listed by "
                                  f"`aiosrun mcp tools {server}`)")]
    return []


def check_agent_steps(doc: Document, agents: Mapping[str, Document],
                      around: Surroundings) -> list[Diagnostic]:
    """The ``agent:`` steps of a playbook: a known agent (or a valid inline body), a ``task``,
    and memory domains the playbook declares."""
    out: list[Diagnostic] = []
    declared = doc.data.get("memory")
    domains = set(declared) if isinstance(declared, list) else set()
    for path, step in iter_steps(doc.data.get("steps"), ("steps",)):
        if "agent" not in step:
            continue
        agent = step["agent"]
        body: Any = None
        name = "inline"
        if isinstance(agent, str):
            if has_expression(agent):
                out.append(Diagnostic.at(doc.span((*path, "agent")), "agent",
                                         "the agent is named literally, not by an expression"))
                continue
            found = agents.get(agent)
            if found is None and around.agents_known:
                known = quote_list(sorted(agents)) or "none in agents/"
                out.append(Diagnostic.at(doc.span((*path, "agent")), "agent",
                                         f"unknown agent '{agent}' (known: {known})"
                                         f"{did_you_mean(agent, agents)}"))
            elif found is not None:
                body, name = found.data, agent
        elif isinstance(agent, dict):
            out += check_inline_agent(doc, (*path, "agent"))
            out += check_agent_body(doc, (*path, "agent"), around)
            body = agent
        given = step.get("with")
        if isinstance(given, dict):
            for key in given:
                if key not in STEP_KEYS:
                    out.append(Diagnostic.at(doc.span((*path, "with", key), key=True),
                                             "argument", f"unknown argument '{key}' for an "
                                             f"agent; it takes {quote_list(sorted(STEP_KEYS))}"))
        if not isinstance(given, dict) or "task" not in given:
            out.append(Diagnostic.at(doc.span((*path, "agent"), key=True), "missing-key",
                                     "an agent step needs 'with: {task: ...}'"))
        if isinstance(body, dict):
            for tool in body.get("tools") or ():
                domain = tool.get("memory") if isinstance(tool, dict) else None
                if isinstance(domain, str) and domain not in domains:
                    out.append(Diagnostic.at(
                        doc.span((*path, "agent")), "memory",
                        f"agent '{name}' searches memory domain '{domain}', which this "
                        "playbook does not declare in 'memory:'"))
    return out


def _at(data: Any, path: JsonPath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data
