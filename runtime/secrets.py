"""Secrets: where their values come from, and the masking that keeps them out of everything
recorded or shown.

Values come from the workspace's ``.env`` file (``secrets.dotenv``) and from the environment
variables that ``secrets.env`` names (these win). :class:`Masker` replaces every value with
``***`` in any JSON-like data, as GitHub Actions masks secrets in logs: the runtime passes
every record through it before the event log sees it, so snapshots, outputs, errors and the
terminal (all read from the log or its state) never hold a secret.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MASK = "***"


def load_secrets(root: Path, settings: Mapping[str, Any]) -> dict[str, str]:
    config = settings.get("secrets", {})
    found: dict[str, str] = {}
    dotenv = root / config.get("dotenv", ".env")
    if dotenv.is_file():  # python-dotenv (and its logging) only when there is a file
        from dotenv import dotenv_values

        found.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    for name in config.get("env", []):
        if name in os.environ:
            found[name] = os.environ[name]
    return found


MIN_TRUNCATED = 4  # a text ending in this many first characters of a secret was cut in it
KNOWN_LENGTH = 64  # texts up to this long are remembered once masked ...
KNOWN_COUNT = 4096  # ... this many at most


def renderings(secret: str) -> set[str]:
    """The forms a secret takes when something escapes or encodes it: JSON (both ASCII and
    not), ``repr``, URL-encoding, and base64 (standard and URL-safe, padded or not, and as
    it appears inside a longer base64 text, such as ``user:password`` in a Basic header)."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             repr(secret)[1:-1], urllib.parse.quote(secret, safe=""),
             urllib.parse.quote(secret), urllib.parse.quote_plus(secret)}
    raw = secret.encode("utf-8")
    for shift in range(3):  # where the secret starts within a 3-byte base64 group
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        whole = [encoded, encoded.rstrip("=")] if not shift else []
        core = encoded[4 if shift else 0: 4 * ((shift + len(raw)) // 3)]  # no other byte
        for text in (*whole, core):
            if len(text) >= 8:
                forms.add(text)
                forms.add(text.replace("+", "-").replace("/", "_"))
    return {form for form in forms if form}


class Masker:
    """Replaces every secret, in every rendering of it, with ``***``; also a text that ends
    in the first characters of a secret (a message cut to a length inside it)."""

    def __init__(self, values: Mapping[str, str]) -> None:
        secrets = {v for v in values.values() if v}
        forms = sorted({form for secret in secrets for form in renderings(secret)},
                       key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(f) for f in forms)) if forms else None
        self._forms = [form for form in forms if len(form) > MIN_TRUNCATED]
        # a text can only end in a cut secret if one of their heads occurs near its end
        self._heads = re.compile("|".join(sorted({re.escape(form[:MIN_TRUNCATED])
                                                  for form in self._forms})))
        self._longest = max((len(form) for form in self._forms), default=0)
        self.forgotten: Any = None  # a Scrubber of the texts this process erased
        # short texts masked before: every record's keys and most of its values recur
        # ("path", "id", "outputs", step ids), and masking each again was a tenth of a step
        self._known: dict[str, str] = {}

    def forget(self, scrubber: Any) -> None:
        """From now on also replace the copies of forgotten memory texts (``erasure.py``):
        a running playbook still holds earlier outputs that carried them."""
        texts = (*(self.forgotten.texts if self.forgotten else ()), *scrubber.texts)
        self.forgotten = type(scrubber)(texts)
        self._known.clear()

    def text(self, text: str) -> str:
        if self._pattern is None and not self.forgotten:
            return text
        known = self._known.get(text)
        if known is not None:
            return known
        masked = text
        if self.forgotten:
            masked = self.forgotten.text(masked)
        if self._pattern is not None:
            masked = self._cut_tail(self._pattern.sub(MASK, masked))
        if len(text) <= KNOWN_LENGTH:
            if len(self._known) >= KNOWN_COUNT:
                self._known.clear()
            self._known[text] = masked
        return masked

    def _cut_tail(self, text: str) -> str:
        """Mask a secret's first characters at the very end of ``text`` (before a ``...``)."""
        trimmed = text.rstrip(" \t\r\n")
        for marker in ("...", "…"):
            trimmed = trimmed.removesuffix(marker)
        if not self._forms or self._heads.search(
                text, max(0, len(trimmed) - self._longest)) is None:
            return text
        for body in (text, trimmed):  # the secret may itself end in what a cut marker is
            for form in self._forms:
                window_start = max(len(body) - len(form) + 1, 0)
                window = body[window_start:]
                found = window.find(form[:MIN_TRUNCATED])
                while found != -1:
                    if form.startswith(window[found:]):
                        return text[:window_start + found] + MASK
                    found = window.find(form[:MIN_TRUNCATED], found + 1)
        return text

    def data(self, value: Any) -> Any:
        if self.forgotten:
            value = self.forgotten.data(value, record=True)
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value
