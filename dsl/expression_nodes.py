"""The AST of ``${{ }}`` expressions and the scope one evaluation reads.

:mod:`expressions` builds the nodes while it parses; :mod:`evaluator` turns them into the
functions that evaluate them; static checks (``aiosrun validate``) walk them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import functions as fn
from . import values as v
from .errors import ExpressionEvaluationError


@dataclass(frozen=True)
class Literal:
    value: v.Value
    position: int


@dataclass(frozen=True)
class Context:
    name: str
    position: int


@dataclass(frozen=True)
class Prop:
    name: str
    position: int


@dataclass(frozen=True)
class Index:
    expr: Node


@dataclass(frozen=True)
class Star:
    pass


@dataclass(frozen=True)
class Access:
    base: Node
    accessors: tuple[Prop | Index | Star, ...]


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class Logical:
    op: str  # "&&" or "||"
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Chain:
    """``a < b <= c`` or ``a == b != c``: left-associative, evaluated without recursion."""

    first: Node
    rest: tuple[tuple[str, Node], ...]


@dataclass(frozen=True)
class Call:
    name: str  # lower case
    written: str
    args: tuple[Node, ...]
    position: int


Node = Literal | Context | Access | Not | Logical | Chain | Call


def children(node: Node) -> list[Node]:
    if isinstance(node, Access):
        return [node.base, *(a.expr for a in node.accessors if isinstance(a, Index))]
    if isinstance(node, Not):
        return [node.operand]
    if isinstance(node, Logical):
        return list(node.operands)
    if isinstance(node, Chain):
        return [node.first, *(n for _, n in node.rest)]
    if isinstance(node, Call):
        return list(node.args)
    return []


class Scope:
    """What one evaluation reads: the contexts (by lower-case name), the functions given by the
    caller (status functions), and the memory used so far. ``lowered`` says the caller's
    names are lower case already, so the mapping is read as it is instead of copied."""

    __slots__ = ("contexts", "functions", "memory", "text")

    def __init__(self, contexts: Mapping[str, Any], text: str,
                 functions: Mapping[str, Callable[[], v.Value]] | None = None,
                 lowered: bool = False) -> None:
        self.contexts = contexts if lowered else {name.lower(): value
                                                  for name, value in contexts.items()}
        self.functions = functions or {}
        self.memory = 0
        self.text = text

    def charge(self, size: int) -> None:
        self.memory += size
        if self.memory > fn.MAX_MEMORY_BYTES:
            raise ExpressionEvaluationError("The maximum allowed memory size was exceeded",
                                            self.text, 0, code="memory",
                                            detail=f"over {fn.MAX_MEMORY_BYTES} bytes")


Evaluator = Callable[[Scope], v.Value]
