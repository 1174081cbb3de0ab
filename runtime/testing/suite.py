"""``aiosrun test``: find the test files, check them, run their cases, report (JUnit too)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

import trio
import trio.testing
from aiosrun.dsl import ir
from aiosrun.dsl.check_tests import check_test
from aiosrun.dsl.diagnostics import sort_diagnostics
from aiosrun.dsl.errors import PlaybookError
from aiosrun.dsl.loader import Document, load_file
from aiosrun.dsl.schema import check_schema
from aiosrun.dsl.validate import collect_files, validate_files
from aiosrun.runtime.registry import Registry
from aiosrun.runtime.testing.runner import CaseResult, run_case


def test_files(root: Path, paths: Sequence[Path]) -> list[Path]:
    """The given files and folders, or the workspace's ``tests/*.yaml``."""
    files, missing = collect_files(list(paths) or [root / "tests"])
    if missing:
        raise PlaybookError(missing)
    return files


def load_tests(root: Path, files: Sequence[Path]) -> tuple[list[Document],
                                                           dict[str, ir.Playbook]]:
    """The test documents and the workspace's compiled playbooks; raises
    :class:`PlaybookError` with every problem of either."""
    catalog = Registry.discover(root).catalog()
    compiled = validate_files(collect_files([root / "playbooks"])[0], display_root=Path.cwd(),
                              catalog=catalog, agents_folder=root / "agents")
    problems = list(compiled.diagnostics)
    playbooks = {p.name: p for p in compiled.playbooks}
    docs = []
    for path in files:
        try:
            doc = load_file(path, _shown(path))
        except PlaybookError as exc:
            problems.extend(exc.diagnostics)
            continue
        found = check_schema(doc, "test")
        if not found:
            found = check_test(doc, playbooks, catalog)
        problems.extend(found)
        docs.append(doc)
    if problems:
        raise PlaybookError(sort_diagnostics(problems))
    return docs, playbooks


def run_tests(root: Path, docs: Sequence[Document], playbooks: dict[str, ir.Playbook],
              select: str | None = None) -> list[CaseResult]:
    """Run every case (those whose name contains ``select``), on one virtual clock."""

    async def main() -> list[CaseResult]:
        results = []
        for doc in docs:
            for index, case in enumerate(doc.data["cases"]):
                if select is None or select in str(case["name"]):
                    results.append(await run_case(root, doc, index, playbooks))
        return results

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def junit(results: Sequence[CaseResult]) -> str:
    """JUnit XML: a testsuite per test file, a testcase per case, failures with messages."""
    suites = ElementTree.Element("testsuites", tests=str(len(results)),
                                 failures=str(sum(not r.passed for r in results)))
    by_file: dict[str, list[CaseResult]] = {}
    for result in results:
        by_file.setdefault(result.file, []).append(result)
    for file, cases in by_file.items():
        suite = ElementTree.SubElement(suites, "testsuite", name=file, tests=str(len(cases)),
                                       failures=str(sum(not c.passed for c in cases)),
                                       time=f"{sum(c.seconds for c in cases):.3f}")
        for case in cases:
            element = ElementTree.SubElement(suite, "testcase", classname=file, name=case.name,
                                             time=f"{case.seconds:.3f}")
            if not case.passed:
                failure = ElementTree.SubElement(element, "failure",
                                                 message=case.failures[0])
                failure.text = "\n".join(case.failures)
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
