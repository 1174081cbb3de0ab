"""Parse and evaluate ``${{ }}`` expressions with GitHub Actions' semantics.

Pipeline: :func:`lexer.tokenize` -> lark LALR parse (``expressions.lark``) -> depth check ->
AST (frozen dataclasses) -> a tree of closures. Parsed expressions are cached by text and the
names they may use. Evaluation never calls ``eval`` and never touches attributes of Python
objects: it reads dictionaries and lists through :mod:`values` and nothing else.

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

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput, UnexpectedToken

from . import functions as fn
from . import values as v
from .errors import ExpressionError, ExpressionEvaluationError, ExpressionParsingError
from .lexer import GitHubLexer, tokenize

MAX_DEPTH = 50


# ---- AST ----------------------------------------------------------------------------------

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


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its text, its AST and the closure that evaluates it."""

    source: str
    ast: Node | None
    run: Callable[[Scope], v.Value] = field(repr=False, compare=False)

    def walk(self) -> Iterator[Node]:
        """Every node, parents before children, in source order."""
        stack: list[Node] = [self.ast] if self.ast is not None else []
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(_children(node)))


def _children(node: Node) -> list[Node]:
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


# ---- parsing ------------------------------------------------------------------------------

@functools.cache
def _parser() -> Lark:
    grammar = resources.files("aiosrun.dsl").joinpath("expressions.lark").read_text("utf-8")
    return Lark(grammar, parser="lalr", lexer=GitHubLexer, start="start")


@functools.lru_cache(maxsize=4096)
def parse(text: str, contexts: frozenset[str],
          extra_functions: frozenset[str] = frozenset()) -> Expression:
    """Parse ``text``; ``contexts`` are the (lower-case) names it may use, ``extra_functions``
    the names of functions beyond GitHub's (``success`` ...). Raises :class:`ExpressionError`.
    """
    tokens = tokenize(text)
    if not tokens:
        return Expression(text, None, lambda scope: None)
    known = {name: spec for name, spec in fn.BUILTINS.items()}
    known.update({name: fn.STATUS[name] for name in extra_functions if name in fn.STATUS})
    try:
        tree = _parser().parse(tokens)  # type: ignore[arg-type, unused-ignore]
    except UnexpectedToken as exc:
        _first_unknown_name(text, tokens, contexts, known, before=_token_index(tokens, exc))
        raise _syntax_error(text, tokens, exc) from None
    except UnexpectedInput:  # pragma: no cover - the custom lexer leaves only token errors
        raise ExpressionParsingError(f"Unexpected symbol in expression: {text}", text, 0,
                                     code="unexpected-symbol") from None
    _first_unknown_name(text, tokens, contexts, known, before=len(tokens))
    _check_depth(text, tree)
    ast = _Builder(text, known).build(tree)
    return Expression(text, ast, _compile(ast, text))


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


def _check_depth(text: str, tree: Tree[Token]) -> None:
    """GitHub's parser counts nesting (parentheses, arguments, '!', '&&'/'||' chains and each
    property access) and stops past 50; this walks the tree the same way, without recursion."""
    stack: list[tuple[Tree[Token] | Token, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionParsingError(f"Exceeded max expression depth {MAX_DEPTH}", text, 0,
                                         code="too-deep",
                                         detail="split the expression or use a step's outputs")
        if not isinstance(node, Tree):
            continue
        rule = node.data
        kids = [c for c in node.children if isinstance(c, Tree)]
        if rule in ("or_expr", "and_expr"):
            stack.append((kids[0], depth))
            stack.extend((kid, depth + 1) for kid in kids[1:])
        elif rule == "not_" or rule == "group":
            stack.append((kids[0], depth + 1))
        elif rule == "call":
            args = kids[0].children if kids else []
            stack.extend((a, depth + 1) for a in args if isinstance(a, Tree))
        elif rule == "access":
            stack.append((kids[0], depth))
            for i, accessor in enumerate(kids[1:], start=1):
                stack.append((Tree("_mark", []), depth + i))
                if accessor.data == "index":
                    inner = [c for c in accessor.children if isinstance(c, Tree)]
                    stack.append((inner[0], depth + i))
        else:
            stack.extend((kid, depth) for kid in kids)


class _Builder:
    """lark tree -> AST. Depth is already bounded, so plain recursion is safe here."""

    def __init__(self, text: str, functions: Mapping[str, fn.FunctionSpec]) -> None:
        self.text = text
        self.functions = functions

    def build(self, node: Tree[Token] | Token) -> Node:
        if isinstance(node, Token):  # pragma: no cover - every token sits in a rule
            raise AssertionError(node)
        rule = node.data
        kids = node.children
        if rule == "literal":
            return self.literal(kids[0])  # type: ignore[arg-type]
        if rule == "context":
            token = kids[0]
            assert isinstance(token, Token)
            return Context(str(token).lower(), token.start_pos or 0)
        if rule == "group":
            return self.build(kids[1])
        if rule == "not_":
            return Not(self.build(kids[1]))
        if rule in ("or_expr", "and_expr"):
            return Logical("||" if rule == "or_expr" else "&&",
                           tuple(self.build(k) for k in kids if isinstance(k, Tree)))
        if rule in ("equality", "comparison"):
            first = self.build(kids[0])
            rest = tuple((str(kids[i]), self.build(kids[i + 1])) for i in range(1, len(kids), 2))
            return Chain(first, rest)
        if rule == "access":
            return Access(self.build(kids[0]),
                          tuple(self.accessor(k) for k in kids[1:] if isinstance(k, Tree)))
        if rule == "call":
            return self.call(node)
        raise AssertionError(f"unexpected rule {rule}")  # pragma: no cover

    def literal(self, token: Token) -> Literal:
        text = str(token)
        pos = token.start_pos or 0
        if token.type == "NUMBER":
            value: v.Value = {"NaN": math.nan, "Infinity": math.inf}.get(text)
            return Literal(v.js_string_to_number(text) if value is None else value, pos)
        if token.type == "STRING":
            return Literal(_token_text(token), pos)
        return Literal({"TRUE": True, "FALSE": False, "NULL": None}[token.type], pos)

    def accessor(self, node: Tree[Token]) -> Prop | Index | Star:
        if node.data == "star":
            return Star()
        if node.data == "prop":
            name = node.children[1]
            assert isinstance(name, Token)
            return Prop(str(name), name.start_pos or 0)
        inner = next(k for k in node.children if isinstance(k, Tree))
        return Index(self.build(inner))

    def call(self, node: Tree[Token]) -> Call:
        name = node.children[0]
        assert isinstance(name, Token)
        args_tree = next((k for k in node.children if isinstance(k, Tree)), None)
        args = tuple(self.build(a) for a in (args_tree.children if args_tree else ())
                     if isinstance(a, Tree))
        spec = self.functions[str(name).lower()]
        fn.check_arity(spec, str(name), len(args), self.text, name.start_pos or 0)
        return Call(str(name).lower(), str(name), args, name.start_pos or 0)


# ---- evaluation -----------------------------------------------------------------------------

class Scope:
    """What one evaluation reads: the contexts (by lower-case name), the functions given by the
    caller (status functions), and the memory used so far."""

    __slots__ = ("contexts", "functions", "memory", "text")

    def __init__(self, contexts: Mapping[str, Any], text: str,
                 functions: Mapping[str, Callable[[], v.Value]] | None = None) -> None:
        self.contexts = {name.lower(): value for name, value in contexts.items()}
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


def _compile(node: Node, text: str) -> Evaluator:
    if isinstance(node, Literal):
        value = node.value
        return lambda scope: value
    if isinstance(node, Context):
        name = node.name
        return lambda scope: v.wrap(scope.contexts.get(name))
    if isinstance(node, Not):
        operand = _compile(node.operand, text)
        return lambda scope: not v.truthy(operand(scope))
    if isinstance(node, Logical):
        return _compile_logical(node, text)
    if isinstance(node, Chain):
        return _compile_chain(node, text)
    if isinstance(node, Access):
        return _compile_access(node, text)
    return _compile_call(node, text)


def _compile_logical(node: Logical, text: str) -> Evaluator:
    operands = [_compile(n, text) for n in node.operands]
    stop_when = node.op == "||"

    def run(scope: Scope) -> v.Value:
        result: v.Value = None
        for operand in operands:
            result = operand(scope)
            if v.truthy(result) is stop_when:
                break
        return result

    return run


_COMPARE: dict[str, Callable[[v.Value, v.Value], bool]] = {
    "==": v.equals,
    "!=": lambda a, b: not v.equals(a, b),
    "<": v.less,
    ">": v.greater,
    "<=": lambda a, b: v.equals(a, b) or v.less(a, b),
    ">=": lambda a, b: v.equals(a, b) or v.greater(a, b),
}


def _compile_chain(node: Chain, text: str) -> Evaluator:
    first = _compile(node.first, text)
    rest = [(_COMPARE[op], _compile(n, text)) for op, n in node.rest]

    def run(scope: Scope) -> v.Value:
        left = first(scope)
        for compare, operand in rest:
            left = compare(left, operand(scope))
        return left

    return run


def _compile_access(node: Access, text: str) -> Evaluator:
    base = _compile(node.base, text)
    steps: list[tuple[str, Any]] = []
    for accessor in node.accessors:
        if isinstance(accessor, Star):
            steps.append(("star", None))
        elif isinstance(accessor, Prop):
            steps.append(("key", _Key.of(accessor.name)))
        else:
            steps.append(("expr", _compile(accessor.expr, text)))

    def run(scope: Scope) -> v.Value:
        value = base(scope)
        for how, what in steps:
            if how == "star":
                value = fn.access(value, None, scope)
            elif how == "key":
                value = fn.access(value, what, scope)
            else:
                value = fn.access(value, _Key.of(what(scope)), scope)
        return value

    return run


class _Key:
    """An index value as GitHub reads it: as text (if primitive) and as a whole number."""

    __slots__ = ("int", "str")

    def __init__(self, text: str | None, number: int | None) -> None:
        self.str = text
        self.int = number

    @classmethod
    def of(cls, index: v.Value) -> _Key:
        text = v.to_string(index) if v.is_primitive(index) else None
        number = v.to_number(index)
        whole = math.floor(number) if math.isfinite(number) and number >= 0 else None
        return cls(text, whole)


def _compile_call(node: Call, text: str) -> Evaluator:
    args = [_compile(a, text) for a in node.args]
    name = node.name
    if name in fn.STATUS:
        def status(scope: Scope) -> v.Value:
            provided = scope.functions.get(name)
            if provided is None:
                raise ExpressionEvaluationError(
                    f"{node.written}() is only available in a step's if:", text, node.position,
                    code="status-function")
            return provided()

        return status
    impl = fn.BUILTINS[name].impl
    position = node.position

    def call(scope: Scope) -> v.Value:
        try:
            return impl(scope, [arg(scope) for arg in args])
        except fn.FunctionFailed as exc:
            raise ExpressionEvaluationError(str(exc), text, position, code=exc.code,
                                            detail=exc.detail) from None

    return call


def evaluate(text: str, contexts: Mapping[str, Any],
             functions: Mapping[str, Callable[[], Any]] | None = None) -> Any:
    """Evaluate one expression (without ``${{ }}``) against ``contexts`` (name -> JSON-like
    value). Returns None, bool, int/float, str, list or dict. ``functions`` may supply the
    status functions (``success`` ...). Raises :class:`ExpressionError` subclasses only.
    """
    names = frozenset(name.lower() for name in contexts)
    extra = frozenset(name.lower() for name in functions) if functions else frozenset()
    expression = parse(text, names, extra)
    provided = ({k.lower(): (lambda f=f: v.wrap(f())) for k, f in functions.items()}
                if functions else None)
    scope = Scope(contexts, text, provided)
    try:
        return v.to_python(expression.run(scope))
    except RecursionError:  # pragma: no cover - depth is bounded at parse time
        raise ExpressionEvaluationError("The expression nests too deeply", text, 0,
                                        code="too-deep") from None
