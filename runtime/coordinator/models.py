"""Model aliases of a workspace and the calls made through them: providers, cassettes
(read once per run), one client per endpoint, the cache."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiosrun.adapters.base import PermanentError
from aiosrun.adapters.llm import (
    DEFAULT_MAX_TOKENS,
    Cassette,
    ModelAnswer,
    ModelCache,
    ModelRequest,
    ModelSpec,
    Price,
    call_openai,
    open_client,
)
from aiosrun.adapters.llm_tools import ChatRequest, call_chat
from aiosrun.dsl import ir
from aiosrun.dsl.render import render_template

if TYPE_CHECKING:
    from aiosrun.runtime.workspace import Workspace



def model_spec(ws: Workspace, alias: str) -> ModelSpec:
    """The workspace's model alias, its ``api_key`` secret reference resolved."""
    raw = model_settings(ws.settings.data, alias)
    api_key = raw.get("api_key")
    if api_key is not None:
        api_key = str(render_template(str(api_key), {"secrets": ws.secrets,
                                                     "vars": ws.settings.vars}))
    return spec_from(alias, raw, ws.root, api_key)


def model_settings(settings: dict[str, Any], alias: str) -> dict[str, Any]:
    models = settings.get("models") or {}
    raw = models.get(alias)
    if raw is None:
        known = ", ".join(sorted(models)) or "none"
        raise PermanentError(f"unknown model alias '{alias}' (aios.yaml models: {known})")
    return dict(raw)


def spec_from(alias: str, raw: dict[str, Any], root: Path, api_key: str | None = None
              ) -> ModelSpec:
    from aiosrun.dsl.durations import parse_duration

    price = raw.get("price") or {}
    cassette = Path(raw.get("cassette") or f"cassettes/{alias}.jsonl")
    timeout = parse_duration(raw["timeout"]) if raw.get("timeout") else None
    return ModelSpec(
        alias=alias, provider=raw["provider"], model=raw["model"], base_url=raw.get("base_url"),
        api_key=api_key, price=Price(float(price.get("input", 0)), float(price.get("output", 0))),
        max_tokens=int(raw.get("max_tokens", DEFAULT_MAX_TOKENS)),
        timeout_s=timeout / 1000 if timeout else 60.0,
        cassette=cassette if cassette.is_absolute() else root / cassette,
        mode=raw.get("mode", "tools"))


def default_alias(settings: dict[str, Any]) -> str:
    models = settings.get("models") or {}
    if "default" in models or not models:
        return "default"
    return str(next(iter(models)))


def tiers_of(body: ir.Llm, settings: dict[str, Any]) -> tuple[ir.Tier, ...]:
    return body.tiers or (ir.Tier(default_alias(settings)),)


class Models:
    """The calls of one workspace: providers, cassettes (read once) and the cache."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.cache = ModelCache(ws.state_dir / "cache" / "models")
        self.cassettes: dict[Path, Cassette] = {}
        self.clients: dict[tuple[str | None, str | None, float], Any] = {}

    async def aclose(self) -> None:
        clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            await client.close()

    def cassette(self, spec: ModelSpec) -> Cassette:
        assert spec.cassette is not None
        found = self.cassettes.get(spec.cassette)
        if found is None:
            found = self.cassettes[spec.cassette] = Cassette(spec.cassette)
        return found

    async def call(self, spec: ModelSpec, request: ModelRequest | ChatRequest,
                   step: str = "") -> ModelAnswer:
        """``ChatRequest``: an agent's turn (tools on offer, the answer an assistant
        message); ``ModelRequest``: an ``llm:`` step's call."""
        recording = self.ws.record_models
        doubles = self.ws.doubles
        if doubles is not None and isinstance(request, ModelRequest):
            given = doubles.answer(step.rsplit("/", 1)[-1])
            if given is not None:
                return given
        if spec.provider == "replay":
            cassette = self.cassette(spec)
            answer = cassette.find(request, step)
            if answer is not None:
                return answer
            if not (recording and spec.base_url):
                raise PermanentError(
                    f"model '{spec.alias}': no recorded answer for this request in "
                    f"{_shown(spec.cassette, self.ws.root)} (key {request.key()[:12]}); "
                    "record one with `aiosrun run --record` and a base_url for this alias")
        where = (spec.base_url, spec.api_key, spec.timeout_s)
        client = self.clients.get(where)
        if client is None:
            client = self.clients[where] = open_client(spec)
        if isinstance(request, ChatRequest):
            answer = await call_chat(spec, request, client)
        else:
            answer = await call_openai(spec, request, client)
        if recording:
            self.cassette(spec).add(request, answer, self.ws.masker.data)
        return answer


def _shown(path: Path | None, root: Path) -> str:
    if path is None:
        return "?"
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
