"""Validation of a set of files: load, schema, semantic checks, compile; all errors in one pass.

This is what ``aiosrun validate`` and ``aiosrun apply`` share. A file is a workspace file when
it is named ``aios.yaml`` or says ``kind: Workspace``; everything else is a playbook.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import ir
from .agents import Surroundings, check_agent_file, check_agent_steps, is_agent
from .check import check_playbook, check_workspace
from .check_adapters import Catalog, check_actions, check_models
from .check_tests import check_test
from .compile import compile_playbook
from .diagnostics import Diagnostic, sort_diagnostics
from .errors import PlaybookError
from .loader import Document, load_file
from .schema import check_schema

WORKSPACE_FILE = "aios.yaml"
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class ValidationResult:
    diagnostics: list[Diagnostic] = field(default_factory=list)
    playbooks: list[ir.Playbook] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)


def collect_files(paths: Sequence[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Expand folders to the YAML files below them (sorted); report paths that do not exist."""
    files: list[Path] = []
    problems: list[Diagnostic] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(
                p for p in path.rglob("*")
                if p.suffix in YAML_SUFFIXES and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)))
        elif path.exists():
            files.append(path)
        else:
            problems.append(Diagnostic(str(path), 1, 1, "io", "no such file or folder"))
    return list(dict.fromkeys(files)), problems


def validate_files(files: Iterable[Path], display_root: Path | None = None,
                   catalog: Catalog | None = None,
                   models: Collection[str] | None = None,
                   known_playbooks: Sequence[ir.Playbook] = (),
                   agents_folder: Path | None = None,
                   mcp_servers: Collection[str] = ()) -> ValidationResult:
    """``catalog`` (``ADAPTER.ACTION`` -> argument schema) also checks ``uses:`` steps, and
    ``models`` (the workspace's model aliases) the models of ``llm:`` steps. Test files
    (``kind: Test``) are checked against the playbooks of this pass and ``known_playbooks``
    (the workspace's, when only tests are validated). Agents (``kind: Agent``) come from
    ``agents_folder`` and the files given; ``mcp_servers`` are the names of aios.yaml's
    ``mcp``."""
    result = ValidationResult()
    names: dict[str, Diagnostic] = {}
    tests: list[Document] = []
    loaded: list[tuple[Path, Document]] = []
    agent_paths = collect_files([agents_folder])[0] \
        if agents_folder is not None and agents_folder.is_dir() else []
    given = {p.resolve() for p in files}
    for path in [*files, *(p for p in agent_paths if p.resolve() not in given)]:
        shown = _display(path, display_root)
        if path.resolve() in given:
            result.files.append(shown)
        try:
            doc = load_file(path, shown)
        except PlaybookError as exc:
            if path.resolve() in given:
                result.diagnostics.extend(exc.diagnostics)
            continue
        loaded.append((path, doc))
    agents = {str(d.data.get("name")): d for _, d in loaded if is_agent(d)}
    playbook_names = {str(d.data.get("name")) for p, d in loaded
                      if not is_agent(d) and not _is_workspace(p, d)
                      and d.data.get("kind") != "Test"} | {p.name for p in known_playbooks}
    around = Surroundings(catalog, models, playbook_names, mcp_servers,
                          agents_known=agents_folder is not None or bool(agents))
    for path, doc in loaded:
        if is_agent(doc):
            if path.resolve() in given:
                result.diagnostics.extend(check_agent_file(doc, around))
            continue
        if _is_workspace(path, doc):
            result.diagnostics.extend(check_schema(doc, "workspace") + check_workspace(doc))
            continue
        if doc.data.get("kind") == "Test":
            problems = check_schema(doc, "test")
            result.diagnostics.extend(problems)
            if not problems:
                tests.append(doc)
            continue
        problems = check_schema(doc, "playbook") + check_playbook(doc)
        if catalog is not None:
            problems += check_actions(doc, catalog)
        if models:
            problems += check_models(doc, models)
        problems += check_agent_steps(doc, agents, around)
        result.diagnostics.extend(problems)
        name = doc.data.get("name")
        if isinstance(name, str):
            first = names.get(name)
            span = doc.span(("name",))
            if first is not None:
                result.diagnostics.append(Diagnostic.at(
                    span, "duplicate-name",
                    f"another playbook is named '{name}' ({first.file}:{first.line})"))
            else:
                names[name] = Diagnostic.at(span, "name", name)
        if not problems:
            result.playbooks.append(compile_playbook(doc, agents))
    playbooks = {p.name: p for p in known_playbooks} | {p.name: p for p in result.playbooks}
    for doc in tests:
        result.diagnostics.extend(check_test(doc, playbooks, catalog or ()))
    result.diagnostics = sort_diagnostics(result.diagnostics)
    return result


def validate_document(doc: Document, catalog: Catalog | None = None,
                      models: Collection[str] | None = None,
                      agents_folder: Path | None = None,
                      mcp_servers: Collection[str] = ()) -> ir.Playbook:
    """Check and compile one loaded playbook; raises :class:`PlaybookError`."""
    problems = check_schema(doc, "playbook") + check_playbook(doc)
    if catalog is not None:
        problems += check_actions(doc, catalog)
    if models:
        problems += check_models(doc, models)
    agents = load_agents(agents_folder)
    problems += check_agent_steps(doc, agents, Surroundings(
        catalog, models, None, mcp_servers, agents_known=agents_folder is not None))
    if problems:
        raise PlaybookError(sort_diagnostics(problems))
    return compile_playbook(doc, agents)


def load_agents(folder: Path | None) -> dict[str, Document]:
    """The agents of a folder by name (files that do not load are validate's to report)."""
    found: dict[str, Document] = {}
    if folder is None or not folder.is_dir():
        return found
    for path in collect_files([folder])[0]:
        try:
            doc = load_file(path)
        except PlaybookError:
            continue
        if is_agent(doc):
            found[str(doc.data.get("name"))] = doc
    return found


def _is_workspace(path: Path, doc: Document) -> bool:
    return path.name == WORKSPACE_FILE or doc.data.get("kind") == "Workspace"


def _display(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)
