"""Canonical formatting of playbooks through ruamel's round trip: comments stay, layout is
normalised (2-space mappings, sequences indented under their key), and a second run changes
nothing.
"""

from __future__ import annotations

import io

from ruamel.yaml import YAML

from .loader import load_text


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines: prompts are prose the operator laid out
    yaml.allow_duplicate_keys = False
    return yaml


def format_text(text: str, file: str) -> str:
    """The canonical form of ``text``; raises :class:`PlaybookError` on input the loader rejects
    (so formatting never silently drops data)."""
    load_text(text, file)
    yaml = _yaml()
    tree = yaml.load(text)
    out = io.StringIO()
    yaml.dump(tree, out)
    result = out.getvalue()
    if not result.endswith("\n"):
        result += "\n"
    return result
