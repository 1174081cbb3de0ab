"""Parse and evaluate ``${{ }}`` expressions with GitHub Actions' semantics.

Pipeline: :func:`lexer.tokenize` -> lark LALR parse (``expressions.lark``) -> depth check ->
AST (:mod:`expression_nodes`) -> a tree of closures (:mod:`evaluator`). Parsed expressions are
cached by text and the names they may use. Evaluation never calls ``eval`` and never touches
attributes of Python objects: it reads dictionaries and lists, through :mod:`values` or with
``dict.get``, and nothing else.

Public entry point: :func:`evaluate`. Static tools (``aiosrun validate``) use :func:`parse`
and walk the AST.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedToken

from . import functions as fn
from . import values as v
from .errors import ExpressionError, ExpressionEvaluationError, ExpressionParsingError
from .evaluator import compile_fast
from .expression_nodes import (
    Access,
    Call,
    Chain,
    Context,
    Index,
    Literal,
    Logical,
    Node,
    Not,
    Prop,
    Scope,
    Star,
    children,
)
from .lexer import GitHubLexer, tokenize

MAX_DEPTH = 50


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its text, its AST and the function that evaluates it."""

    source: str
    ast: Node | None
    run: Callable[[Scope], v.Value] = field(repr=False, compare=False)

    def walk(self) -> Iterator[Node]:
        """Every node, parents before children, in source order."""
        stack: list[Node] = [self.ast] if self.ast is not None else []
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(children(node)))


# ---- parsing ------------------------------------------------------------------------------

@functools.cache
def _parser() -> Lark:
    """The LALR parser, building the AST while it reduces (no parse tree, no recursion)."""
    grammar = resources.files("aiosrun.dsl").joinpath("expressions.lark").read_text("utf-8")
    return Lark(grammar, parser="lalr", lexer=GitHubLexer, start="start",
                transformer=_AstBuilder())


@functools.lru_cache(maxsize=4096)
def parse(text: str, contexts: frozenset[str],
          extra_functions: frozenset[str] = frozenset()) -> Expression:
    """Parse ``text``; ``contexts`` are the (lower-case) names it may use, ``extra_functions``
    the names of functions beyond GitHub's (``success`` ...). Raises :class:`ExpressionError`.
    """
    tokens = tokenize(text)
    if not tokens:
        return Expression(text, None, lambda scope: None)
    known = dict(fn.BUILTINS)
    known.update({name: fn.STATUS[name] for name in extra_functions if name in fn.STATUS})
    try:
        built: Built = _parser().parse(tokens)  # type: ignore[arg-type, assignment, unused-ignore]
        ast: Node = built[0]
        reach: int = built[1]
    except UnexpectedToken as exc:
        _first_unknown_name(text, tokens, contexts, known, before=_token_index(tokens, exc))
        raise _syntax_error(text, tokens, exc) from None
    except _ArityError as error:  # raised by _AstBuilder.call while the parser reduces
        _first_unknown_name(text, tokens, contexts, known, before=error.token_index(tokens))
        fn.check_arity(fn.BUILTINS[error.name.lower()], error.name, error.count, text,
                       error.position)
        raise AssertionError("check_arity accepted what the parser refused") from None
    _first_unknown_name(text, tokens, contexts, known, before=len(tokens))
    if 1 + reach > MAX_DEPTH:
        raise ExpressionParsingError(f"Exceeded max expression depth {MAX_DEPTH}", text, 0,
                                     code="too-deep",
                                     detail="split the expression or use a step's outputs")
    for node in _calls(ast):
        if node.name in fn.STATUS and node.name not in known:  # pragma: no cover
            continue
        fn.check_arity(known[node.name], node.written, len(node.args), text, node.position)
    return Expression(text, ast, compile_fast(ast, text))


@functools.lru_cache(maxsize=1024)
def uses_status_function(text: str) -> bool:
    """Whether ``text`` calls ``success()``, ``failure()``, ``always()`` or ``cancelled()``:
    an ``if:`` that calls none means ``success() && (...)``, as in GitHub Actions."""
    tokens = tokenize(text)
    return any(token.type == "IDENT" and str(token).lower() in fn.STATUS
               and (not i or tokens[i - 1].type != "DOT")
               and i + 1 < len(tokens) and tokens[i + 1].type == "LPAR"
               for i, token in enumerate(tokens))


def _calls(ast: Node) -> Iterator[Call]:
    stack = [ast]
    while stack:
        node = stack.pop()
        if isinstance(node, Call):
            yield node
        stack.extend(children(node))


def _token_index(tokens: Sequence[Token], exc: UnexpectedToken) -> int:
    if exc.token.type == "$END":
        return len(tokens)
    for i, token in enumerate(tokens):
        if token.start_pos == exc.token.start_pos:
            return i
    return len(tokens)


def _syntax_error(text: str, tokens: Sequence[Token], exc: UnexpectedToken) -> ExpressionError:
    if exc.token.type == "$END":
        last = tokens[-1]
        start = last.start_pos or 0
        return ExpressionParsingError(
            f"Unexpected end of expression: '{_token_text(last)}'. Located at position "
            f"{start + 1} within expression: {text}", text, start,
            code="unexpected-end", symbol=_token_text(last),
            detail="the expression stops where more was expected")
    token = exc.token
    start = token.start_pos or 0
    return ExpressionParsingError(
        f"Unexpected symbol: '{_token_text(token)}'. Located at position "
        f"{start + 1} within expression: {text}", text, start,
        code="unexpected-symbol", symbol=_token_text(token))


def _token_text(token: Token) -> str:
    if token.type == "STRING":
        return str(token)[1:-1].replace("''", "'")
    return str(token)


def _first_unknown_name(text: str, tokens: Sequence[Token], contexts: frozenset[str],
                        functions: Mapping[str, fn.FunctionSpec], before: int) -> None:
    """Report the first unknown context or function before token ``before``, as GitHub's
    recursive-descent parser meets them (left to right) before any later syntax error."""
    for i in range(min(before, len(tokens))):
        token = tokens[i]
        if token.type != "IDENT" or (i and tokens[i - 1].type == "DOT"):
            continue
        name = str(token)
        pos = token.start_pos or 0
        is_call = i + 1 < len(tokens) and tokens[i + 1].type == "LPAR"
        if is_call and name.lower() not in functions:
            # GitHub's message always says "position 1"; .position holds the real offset.
            raise ExpressionParsingError(
                f"Unrecognized function: '{name}'. Located at position 1", text, pos,
                code="unknown-function", symbol=name,
                detail=fn.unknown_function_hint(name, functions))
        if not is_call and name.lower() not in contexts:
            raise ExpressionParsingError(
                f"Unrecognized named-value: '{name}'. Located at position {pos + 1} within "
                f"expression: {text}", text, pos, code="unknown-context", symbol=name,
                detail=("available here: " + ", ".join(sorted(contexts))) if contexts
                else "no contexts are available here")


class _ArityError(Exception):
    """Raised inside the parser for a built-in called with the wrong number of arguments."""

    def __init__(self, name: str, count: int, position: int) -> None:
        self.name, self.count, self.position = name, count, position

    def token_index(self, tokens: Sequence[Token]) -> int:
        """Index just past the call's closing parenthesis: GitHub checks the arity there, after
        it has met every name inside the arguments."""
        start = next(i for i, t in enumerate(tokens) if t.start_pos == self.position)
        depth = 0
        for i in range(start + 1, len(tokens)):
            depth += {"LPAR": 1, "RPAR": -1}.get(tokens[i].type, 0)
            if depth == 0:
                return i + 1
        return len(tokens)


Built = tuple[Any, int]  # an AST node (or accessor) and its *reach*: how much deeper than
                         # itself GitHub's parser counts while reading it


class _AstBuilder(Transformer[Token, Built]):
    """Builds AST nodes bottom-up during the LALR reductions and computes each node's reach,
    so GitHub's depth limit (50, counting parentheses, arguments, '!', '&&'/'||' chains and
    property accesses) is checked at the root without walking the tree."""

    def literal(self, kids: list[Token]) -> Built:
        token = kids[0]
        text = str(token)
        pos = token.start_pos or 0
        if token.type == "NUMBER":
            special: v.Value = {"NaN": math.nan, "Infinity": math.inf}.get(text)
            return Literal(v.js_string_to_number(text) if special is None else special, pos), 0
        if token.type == "STRING":
            return Literal(_token_text(token), pos), 0
        return Literal({"TRUE": True, "FALSE": False, "NULL": None}[token.type], pos), 0

    def context(self, kids: list[Token]) -> Built:
        return Context(str(kids[0]).lower(), kids[0].start_pos or 0), 0

    def group(self, kids: list[Any]) -> Built:
        node, reach = kids[1]
        return node, reach + 1

    def not_(self, kids: list[Any]) -> Built:
        node, reach = kids[1]
        return Not(node), reach + 1

    def _logical(self, op: str, kids: list[Any]) -> Built:
        operands = [k for k in kids if isinstance(k, tuple)]
        reach = max(operands[0][1], 1 + max(r for _, r in operands[1:]))
        return Logical(op, tuple(n for n, _ in operands)), reach

    def or_expr(self, kids: list[Any]) -> Built:
        return self._logical("||", kids)

    def and_expr(self, kids: list[Any]) -> Built:
        return self._logical("&&", kids)

    def _chain(self, kids: list[Any]) -> Built:
        first, reach = kids[0]
        rest = []
        for i in range(1, len(kids), 2):
            node, r = kids[i + 1]
            rest.append((str(kids[i]), node))
            reach = max(reach, r)
        return Chain(first, tuple(rest)), reach

    equality = _chain
    comparison = _chain

    def arguments(self, kids: list[Any]) -> list[Built]:
        return [k for k in kids if isinstance(k, tuple)]

    def call(self, kids: list[Any]) -> Built:
        name: Token = kids[0]
        args: list[Built] = next((k for k in kids if isinstance(k, list)), [])
        lowered = str(name).lower()
        spec = fn.BUILTINS.get(lowered)
        if spec is not None and not fn.arity_ok(spec, len(args)):
            raise _ArityError(str(name), len(args), name.start_pos or 0)
        reach = max((r + 1 for _, r in args), default=0)
        return Call(lowered, str(name), tuple(n for n, _ in args), name.start_pos or 0), reach

    def prop(self, kids: list[Token]) -> Built:
        return Prop(str(kids[1]), kids[1].start_pos or 0), 0

    def star(self, kids: list[Token]) -> Built:
        return Star(), 0

    def index(self, kids: list[Any]) -> Built:
        node, reach = kids[1]
        return Index(node), reach

    def access(self, kids: list[Any]) -> Built:
        base, reach = kids[0]
        accessors = kids[1:]
        reach = max(reach, len(accessors))
        for i, (accessor, inner) in enumerate(accessors, start=1):
            if isinstance(accessor, Index):
                reach = max(reach, i + inner)
        return Access(base, tuple(a for a, _ in accessors)), reach


# ---- evaluation -----------------------------------------------------------------------------

def evaluate(text: str, contexts: Mapping[str, Any],
             functions: Mapping[str, Callable[[], Any]] | None = None) -> Any:
    """Evaluate one expression (without ``${{ }}``) against ``contexts`` (name -> JSON-like
    value). Returns None, bool, int/float, str, list or dict. ``functions`` may supply the
    status functions (``success`` ...). Raises :class:`ExpressionError` subclasses only.
    """
    value = evaluate_value(text, contexts, functions)
    try:
        return v.to_python(value)
    except TypeError as exc:  # a container of the result holds something that is not JSON
        raise ExpressionEvaluationError(f"Context data is not JSON: {exc}", text, 0,
                                        code="not-json") from None


def evaluate_value(text: str, contexts: Mapping[str, Any],
                   functions: Mapping[str, Callable[[], Any]] | None = None) -> v.Value:
    """Like :func:`evaluate`, but returns the expression model's value (for string coercion)."""
    key = (text, *contexts) if not functions else (text, *contexts, None, *functions)
    entry = _ENTRIES.get(key)
    if entry is None:
        entry = _entry(text, contexts, functions)
        if len(_ENTRIES) >= _MAX_ENTRIES:
            _ENTRIES.clear()
        _ENTRIES[key] = entry
    run, lowered = entry
    provided = ({k.lower(): (lambda f=f: v.wrap(f())) for k, f in functions.items()}
                if functions else None)
    try:
        return run(Scope(contexts, text, provided, lowered))
    except TypeError as exc:  # a context holds something that is not JSON data
        raise ExpressionEvaluationError(f"Context data is not JSON: {exc}", text, 0,
                                        code="not-json") from None
    except RecursionError:  # pragma: no cover - depth is bounded at parse time
        raise ExpressionEvaluationError("The expression nests too deeply", text, 0,
                                        code="too-deep") from None


_MAX_ENTRIES = 4096
_ENTRIES: dict[tuple[Any, ...], tuple[Callable[[Scope], v.Value], bool]] = {}
"""(text, context names..., [None, function names...]) -> the parsed expression's function
and whether those names are lower case already. A hit costs a tuple and one dictionary
lookup, where :func:`parse`'s cache needs two frozensets built and hashed on every call."""


def _entry(text: str, contexts: Mapping[str, Any],
           functions: Mapping[str, Callable[[], Any]] | None
           ) -> tuple[Callable[[Scope], v.Value], bool]:
    names = frozenset(name.lower() for name in contexts)
    extra = frozenset(name.lower() for name in functions) if functions else frozenset()
    lowered = all(name == name.lower() for name in contexts)
    return parse(text, names, extra).run, lowered
