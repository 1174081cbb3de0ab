"""The Masker hides a secret in every rendering: escaped, encoded, embedded in base64, cut."""

from __future__ import annotations

import base64
import json
import urllib.parse

from aiosrun.runtime.secrets import Masker
from hypothesis import given
from hypothesis import strategies as st

SECRETS = st.text(min_size=8, max_size=40).filter(lambda s: s.strip() == s and "*" not in s)


@given(secret=SECRETS, before=st.text(max_size=5), after=st.text(max_size=5))
def test_every_rendering_is_masked(secret: str, before: str, after: str) -> None:
    masker = Masker({"S": secret})
    raw = secret.encode("utf-8", "surrogatepass")
    renderings = [secret, json.dumps(secret), json.dumps(secret, ensure_ascii=False),
                  repr(secret), urllib.parse.quote(secret, safe=""),
                  urllib.parse.quote_plus(secret)]
    for text in renderings:
        assert secret not in masker.text(before + text + after)
        assert masker.text(before + text + after) != before + text + after
    prefix = before.encode("utf-8", "surrogatepass")
    encoded = base64.b64encode(prefix + raw + after.encode("utf-8", "surrogatepass")).decode()
    assert "***" in masker.text(encoded)


@given(secret=SECRETS, cut=st.integers(min_value=4, max_value=39))
def test_a_text_cut_inside_a_secret_keeps_no_prefix(secret: str, cut: int) -> None:
    masker = Masker({"S": secret})
    shown = masker.text(f"error body: {secret[:cut]}")
    assert shown.startswith("error body: ")
    if cut < len(secret):
        assert secret[:cut] not in shown
