"""Model calls behind ``llm:`` steps: the ``openai`` and ``replay`` providers, cache, prices.

``openai`` speaks to any OpenAI-compatible endpoint through instructor's async client, which
runs directly under trio (its retry loop sleeps through sniffio). openai's own retries are
off: the step's ``retry`` policy is the one that counts, and instructor's retries are only
the validation retries of an ``output`` schema. ``replay`` answers from a cassette, a JSONL
file of recorded answers keyed by a hash of the request, so a playbook can be tested offline
and for free; ``aiosrun run --record`` fills the cassette from a real endpoint.

instructor and openai take about a second to import: they are imported inside the call.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import PermanentError, RateLimited, TransientError

DEFAULT_MAX_TOKENS = 1024
DEFAULT_TIMEOUT_S = 60.0
RETRY_OVERHEAD_TOKENS = 200  # instructor's "fix the errors" message around a failed answer


class BudgetExceeded(PermanentError):
    error_class = "budget"


class InvalidAnswer(PermanentError):
    """The model's answers kept failing the ``output`` schema; ``usage`` is still paid for."""

    error_class = "validation"

    def __init__(self, message: str, usage: Usage, latency_ms: float = 0.0) -> None:
        super().__init__(message)
        self.usage = usage
        self.latency_ms = latency_ms


@dataclass(frozen=True)
class Price:
    input: float = 0.0  # USD per million prompt tokens
    output: float = 0.0  # USD per million completion tokens

    def cost(self, usage: Usage) -> float:
        return round((usage.input_tokens * self.input + usage.output_tokens * self.output)
                     / 1_000_000, 12)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class ModelSpec:
    """One alias of the workspace's ``models``, its secret reference already resolved."""

    alias: str
    provider: str
    model: str
    base_url: str | None = None
    api_key: str | None = None
    price: Price = Price()
    max_tokens: int = DEFAULT_MAX_TOKENS
    timeout_s: float = DEFAULT_TIMEOUT_S
    cassette: Path | None = None
    mode: str = "tools"  # how instructor asks for structured output: tools or json


@dataclass(frozen=True)
class ModelRequest:
    model: str
    messages: tuple[tuple[str, str], ...]  # (role, content)
    schema: Mapping[str, Any] | None
    max_tokens: int
    temperature: float | None = None
    validation_retries: int = 2

    def key(self) -> str:
        """A hash of what decides the answer: model, messages, schema and parameters."""
        canonical = json.dumps(
            {"model": self.model, "messages": [list(m) for m in self.messages],
             "schema": self.schema, "max_tokens": self.max_tokens,
             "temperature": self.temperature},
            sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def chat_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass(frozen=True)
class ModelAnswer:
    output: Any  # the validated object, or {"text": ...} for plain text
    usage: Usage = Usage()
    latency_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def estimate_tokens(text: str) -> int:
    """An upper-leaning estimate of a text's tokens (about 4 characters per token)."""
    return math.ceil(len(text) / 3.5) + 4


def worst_case_cost(spec: ModelSpec, request: ModelRequest) -> float:
    """The most one call may cost: every validation retry taken, each answer at max_tokens,
    each retry resending the conversation plus the failed answer."""
    prompt = sum(estimate_tokens(content) for _, content in request.messages)
    if request.schema is not None:
        prompt += estimate_tokens(json.dumps(request.schema, default=_plain))
    attempts = request.validation_retries + 1 if request.schema is not None else 1
    return spec.price.cost(worst_case_usage(prompt, request.max_tokens, attempts))


def worst_case_usage(prompt_tokens: int, max_tokens: int, attempts: int) -> Usage:
    total = Usage()
    for attempt in range(attempts):
        grown = prompt_tokens + attempt * (max_tokens + RETRY_OVERHEAD_TOKENS)
        total = Usage(total.input_tokens + grown, total.output_tokens + max_tokens)
    return total


# ---- providers ------------------------------------------------------------------------------

def open_client(spec: ModelSpec) -> Any:
    """An openai async client for the spec's endpoint (making one costs about 25 ms: callers
    keep it for the run)."""
    import openai

    if not spec.base_url and spec.api_key is None:
        raise PermanentError(f"model '{spec.alias}': no api_key (set it to a secret reference "
                             "such as ${{ secrets.OPENAI_API_KEY }})")
    return openai.AsyncOpenAI(base_url=spec.base_url, api_key=spec.api_key or "unused",
                              max_retries=0, timeout=spec.timeout_s)


async def call_openai(spec: ModelSpec, request: ModelRequest, client: Any) -> ModelAnswer:
    """One model call through instructor (structured) or openai (plain text)."""
    import instructor
    import openai
    from instructor.core import InstructorRetryException

    params: dict[str, Any] = {"model": spec.model, "messages": request.chat_messages(),
                              "max_tokens": request.max_tokens}
    if request.temperature is not None:
        params["temperature"] = request.temperature
    started = time.perf_counter()
    try:
        if request.schema is None:
            completion = await client.chat.completions.create(**params)
            text = completion.choices[0].message.content or ""
            return ModelAnswer({"text": text}, _usage(completion.usage), _ms(started))
        wrapped = _wrap(request.schema)
        mode = instructor.Mode.JSON if spec.mode == "json" else instructor.Mode.TOOLS
        patched = instructor.from_openai(client, mode=mode)
        try:
            answer, completion = await patched.chat.completions.create_with_completion(
                response_model=response_model(wrapped), max_retries=request.validation_retries,
                **params)
        except InstructorRetryException as exc:
            usage = _usage(getattr(exc, "total_usage", None))
            cause = _last_error(exc)
            raise InvalidAnswer(f"model '{spec.alias}': no answer fitting the output schema "
                                f"after {exc.n_attempts} attempts: {cause}", usage,
                                _ms(started)) from None
        output = answer.model_dump()
        if wrapped is not request.schema:
            output = output.get("value")
        return ModelAnswer(output, _usage(completion.usage), _ms(started))
    except openai.OpenAIError as exc:
        raise api_error(spec.alias, exc) from None


def api_error(alias: str, exc: Exception) -> Exception:
    """The step error for an OpenAI client error: rate limits and server errors are retried,
    refusals are permanent; anything else is the client's own and is raised as it is."""
    import openai

    if isinstance(exc, openai.RateLimitError):
        return RateLimited(f"model '{alias}': rate limited (429)",
                           retry_after=_retry_after(exc.response.headers))
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return TransientError(f"model '{alias}': server error {exc.status_code}")
        return PermanentError(f"model '{alias}': request refused ({exc.status_code}): "
                              f"{_api_message(exc)}")
    if isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError)):
        return TransientError(f"model '{alias}': {type(exc).__name__}: {exc}")
    return exc


def response_model(schema: Mapping[str, Any]) -> Any:
    """A pydantic model that presents ``schema`` to instructor and checks answers with
    jsonschema, so the step's schema is enforced exactly (not a translation of it)."""
    from jsonschema import Draft202012Validator
    from pydantic import BaseModel, ConfigDict, model_validator

    validator = Draft202012Validator(dict(schema))
    presented = {"title": "answer", **schema}

    class Answer(BaseModel):
        model_config = ConfigDict(extra="allow")

        @model_validator(mode="before")
        @classmethod
        def _fits_schema(cls, data: Any) -> Any:
            problems = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
            if problems:
                raise ValueError("; ".join(
                    f"{'/'.join(map(str, p.absolute_path)) or 'answer'}: {p.message}"
                    for p in problems[:5]))
            return data

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return dict(presented)

    return Answer


def _wrap(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """Tool calls carry objects: any other schema travels as the ``value`` of one."""
    if schema.get("type") == "object":
        return schema
    return {"type": "object", "required": ["value"], "properties": {"value": dict(schema)},
            "additionalProperties": False}


class Cassette:
    """Recorded answers, one JSON line each: ``{"key", "model", "messages", "output", "usage"}``.

    The request travels with its answer so an operator can read (and review in git) what was
    asked; only ``key`` is used to find it. A hand-written entry may carry ``"match":
    {"step": "PLAYBOOK/STEP", "model"?: NAME}`` instead of a key: it answers any request of
    that step (and model) that no recorded entry answers, which is how shipped examples stay
    replayable when their prompts carry run-specific text."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, dict[str, Any]] | None = None
        self._loose: list[dict[str, Any]] = []

    def entries(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            self._entries = {}
            if self.path.is_file():
                for number, line in enumerate(self.path.read_text("utf-8").splitlines(), 1):
                    if not line.strip():
                        continue
                    try:
                        entry = json.loads(line)
                        if "key" in entry:
                            self._entries[str(entry["key"])] = entry
                        else:
                            self._loose.append({**entry, "match": dict(entry["match"])})
                    except (ValueError, KeyError, TypeError):
                        raise PermanentError(
                            f"{self.path}:{number}: not a cassette entry (expected a JSON "
                            "object with a 'key' or a 'match')") from None
        return self._entries

    def find(self, request: Any, step: str = "") -> ModelAnswer | None:
        entry = self.entries().get(request.key())
        if entry is None:
            turn = getattr(request, "turn", None)  # an agent's turn, for hand-written entries
            entry = next((e for e in self._loose
                          if e["match"].get("step") == step
                          and e["match"].get("model", request.model) == request.model
                          and e["match"].get("turn", turn) == turn), None)
        if entry is None:
            return None
        usage = entry.get("usage") or {}
        return ModelAnswer(entry.get("output"), Usage(int(usage.get("input_tokens", 0)),
                                                      int(usage.get("output_tokens", 0))))

    def add(self, request: Any, answer: ModelAnswer,
            mask: Callable[[Any], Any] = lambda value: value) -> None:
        """Append an answer; ``mask`` hides secrets in what is written (the key is a hash)."""
        entry = {"key": request.key(), **mask({
            "model": request.model,
            "messages": [list(m) if isinstance(m, tuple) else m for m in request.messages],
            "schema": request.schema, "output": answer.output,
            **({"tools": [t["function"]["name"] for t in request.tools]}
               if getattr(request, "tools", None) else {}),
            "usage": {"input_tokens": answer.usage.input_tokens,
                      "output_tokens": answer.usage.output_tokens}})}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry, ensure_ascii=False, default=_plain) + "\n")
        self.entries()[entry["key"]] = entry


class ModelCache:
    """``cache: true`` answers, one file per request hash under ``.aios/cache/models/``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> ModelAnswer | None:
        try:
            entry = json.loads(self._path(key).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return ModelAnswer(entry["output"], Usage())

    def put(self, key: str, output: Any) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"output": output}, ensure_ascii=False), "utf-8")
        temporary.replace(path)


# ---- helpers ------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    return Usage(int(getattr(usage, "prompt_tokens", 0) or 0),
                 int(getattr(usage, "completion_tokens", 0) or 0))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _retry_after(headers: Any) -> float | None:
    try:
        return float(headers.get("retry-after"))
    except (TypeError, ValueError):
        return None


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", exc))


def _last_error(exc: Any) -> str:
    """The last answer's problem in the project's words: pydantic's and instructor's own text
    (``For further information visit ...``) never reaches the operator."""
    cause = getattr(exc, "__cause__", None) or exc
    errors = getattr(cause, "errors", None)
    if callable(errors):
        try:
            items = list(errors())
        except Exception:  # not pydantic's ValidationError after all
            items = []
        said = []
        for item in items:
            text = str(item.get("msg", "")).removeprefix("Value error, ")
            if item.get("type") == "json_invalid":
                text = f"the answer is not JSON ({text.removeprefix('Invalid JSON: ')})"
            said.append(text)
        if any(said):
            return "; ".join(t for t in said if t)
    text = str(cause)
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith("For further information")]
    for line in lines:
        if line.startswith("Value error, "):
            return line.removeprefix("Value error, ").split(" [type=")[0]
    return lines[-1] if lines else "invalid answer"
