"""The IR as JSON, so the event log can pin the exact compiled version a run started with.

Dataclasses become objects tagged with ``"$"`` (their class name); tuples become lists and
come back as tuples. Decoding accepts only the IR's own classes, never an arbitrary name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from . import ir
from .diagnostics import Span

_CLASSES: dict[str, type] = {
    cls.__name__: cls for cls in (
        Span, ir.Const, ir.Expr, ir.Interp, ir.ListOf, ir.MapOf, ir.Retry, ir.Escalate,
        ir.Uses, ir.Tier, ir.Llm, ir.Gate, ir.Wait, ir.Emit, ir.Parallel, ir.Foreach, ir.Call,
        ir.SetValues, ir.AgentTool, ir.AgentDef, ir.Agent, ir.Compensation, ir.Step,
        ir.Triggers, ir.Policy, ir.Playbook,
    )
}


def ir_classes() -> tuple[type, ...]:
    """Every class an IR value is made of (a decoder builds these and nothing else)."""
    return (*_CLASSES.values(), ir.FrozenDict)


def encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"$": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = encode(getattr(value, f.name))
        return out
    if isinstance(value, ir.FrozenDict):
        return {"$": "FrozenDict", "items": {k: encode(v) for k, v in value.items()}}
    if isinstance(value, tuple):
        return [encode(v) for v in value]
    return value


_FIELDS: dict[type, frozenset[str]] = {
    cls: frozenset(f.name for f in dataclasses.fields(cls)) for cls in _CLASSES.values()
}
_PLAIN = frozenset({str, int, float, bool, type(None)})


def decode(value: Any) -> Any:
    if isinstance(value, list):
        if not value:
            return ()
        return tuple(x if type(x) in _PLAIN else decode(x) for x in value)
    if isinstance(value, dict):
        tag = value.get("$")
        if tag == "FrozenDict":
            return ir.FrozenDict({k: decode(v) for k, v in value["items"].items()})
        cls = _CLASSES.get(str(tag))
        if cls is None:
            raise ValueError(f"not an IR object: {tag!r}")
        state = {k: x if type(x) in _PLAIN else decode(x) for k, x in value.items() if k != "$"}
        if state.keys() == _FIELDS[cls]:
            # Every field and nothing else: filled in as pickle does, skipping the frozen
            # __init__'s object.__setattr__ per field (the IR classes have no __post_init__).
            obj: Any = object.__new__(cls)
            obj.__dict__.update(state)
            return obj
        return cls(**state)  # an older layout: the defaults of missing fields apply
    return value


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """Build with the cyclic collector paused, then hand what was built to the oldest
    generation without a collection walking it. A decoded playbook is hundreds of thousands
    of small acyclic objects that live as long as the process keeps the version: the
    collections their allocation set off took a third of a 20,000-step playbook's run start,
    and the first young collections after it walked them all again (freeze then unfreeze
    moves every tracked object to the oldest generation; a full collection still walks
    them, and young garbage waits for it). A process that froze objects itself (``serve``)
    keeps them frozen: there the step is left out."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()


def decode_playbook(value: Any) -> ir.Playbook:
    """Decode as :func:`long_lived` builds."""
    with long_lived():
        playbook = decode(value)
    if not isinstance(playbook, ir.Playbook):
        raise ValueError("not a playbook")
    return playbook


_DECODED: OrderedDict[tuple[str, str], ir.Playbook] = OrderedDict()
_DECODED_MAX = 16  # versions kept decoded in this process (a 20,000-step one is ~100 MB)
_DECODED_LOCK = threading.Lock()


def cached_playbook(where: str, digest: str, load: Callable[[], ir.Playbook]) -> ir.Playbook:
    """The playbook version ``digest`` of the workspace at ``where``, decoded once per process
    (``load`` decodes it): every run start of a large playbook decoded it again from the
    log's JSON. The digest names the content, the workspace the file names in its spans."""
    key = (where, digest)
    with _DECODED_LOCK:
        playbook = _DECODED.get(key)
        if playbook is not None:
            _DECODED.move_to_end(key)
            return playbook
    playbook = load()
    with _DECODED_LOCK:
        _DECODED[key] = playbook
        while len(_DECODED) > _DECODED_MAX:
            _DECODED.popitem(last=False)
    return playbook


def forget_decoded(where: str) -> None:
    """Drop the decoded versions of a workspace (texts were erased from its log)."""
    with _DECODED_LOCK:
        for key in [key for key in _DECODED if key[0] == where]:
            del _DECODED[key]
