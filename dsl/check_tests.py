"""Semantic checks of ``kind: Test`` files: the playbook they test exists, and every step id
they mock, answer, decide or expect is a step of it (with did-you-mean)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from . import ir
from .diagnostics import Diagnostic, did_you_mean
from .loader import Document, JsonPath


def check_test(doc: Document, playbooks: Mapping[str, ir.Playbook],
               actions: Collection[str] = ()) -> list[Diagnostic]:
    name = doc.data.get("playbook")
    if not isinstance(name, str):
        return []
    playbook = playbooks.get(name)
    if playbook is None:
        return [Diagnostic.at(doc.span(("playbook",)), "unknown-playbook",
                              f"no playbook named '{name}' in the workspace"
                              + did_you_mean(name, playbooks))]
    steps = {step.id: step for step in playbook.walk()}
    gates = set(steps) | {f"{s}#approval" for s in steps}
    llm = {s for s, step in steps.items() if isinstance(step.body, ir.Llm)}
    problems: list[Diagnostic] = []
    for index, case in enumerate(doc.data.get("cases") or []):
        if not isinstance(case, dict):
            continue
        here: JsonPath = ("cases", index)
        for key in case.get("mocks") or {}:
            if "." in key:
                if actions and key not in actions:
                    problems.append(_unknown(doc, (*here, "mocks", key), "action", key,
                                             actions))
            elif key not in steps:
                problems.append(_unknown(doc, (*here, "mocks", key), "step", key, steps))
        for key in case.get("models") or {}:
            if key not in llm:
                problems.append(_unknown(doc, (*here, "models", key), "llm step", key, llm))
        for key in case.get("decisions") or {}:
            if key not in gates:
                problems.append(_unknown(doc, (*here, "decisions", key), "step", key, steps))
        expect: Any = case.get("expect") or {}
        for key in (expect.get("steps") or {}) if isinstance(expect, dict) else ():
            if key not in steps:
                problems.append(_unknown(doc, (*here, "expect", "steps", key), "step", key,
                                         steps))
    return problems


def _unknown(doc: Document, path: JsonPath, what: str, name: str,
             known: Collection[str]) -> Diagnostic:
    return Diagnostic.at(doc.span(path, key=True), f"unknown-{what.replace(' ', '-')}",
                         f"no {what} '{name}' in the playbook" + did_you_mean(name, known))
