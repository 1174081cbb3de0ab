"""Tokens of the ``${{ }}`` language, cut the way GitHub Actions cuts them.

GitHub reads a token up to the next *boundary* character (``( ) [ ] , . ! > < = & |`` or
white space) and only then decides whether it is legal, so ``1 @abc 2`` fails on the whole
``@abc`` and ``-0xFF`` on the whole number. A regular-expression lexer would split those
differently, so this hand-written lexer feeds lark's LALR parser (``expressions.lark``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from lark import Token
from lark.lexer import Lexer

from .errors import ExpressionLexingError
from .values import js_string_to_number

MAX_EXPRESSION_LENGTH = 21_000
_SINGLE = {"(": "LPAR", ")": "RPAR", "[": "LSQB", "]": "RSQB", ",": "COMMA", "*": "STAR"}
_KEYWORDS = {"true": "TRUE", "false": "FALSE", "null": "NULL"}
_AFTER_VALUE = frozenset({"IDENT", "RSQB", "RPAR", "STAR"})
# JavaScript's \s: what ends a word. Only " \t\r\n" are skipped between tokens; any other
# space character is a symbol of its own (and an error), as in GitHub's lexer.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_WORD_REST = re.compile(f"[^()\\[\\],.!><=&|{_JS_SPACE}]*")
_NUMBER_REST = re.compile(f"[^()\\[\\],!><=&|{_JS_SPACE}]*")
_SKIPPED = re.compile("[ \t\r\n]+")


def _legal_identifier(text: str) -> bool:
    if not text or not (text[0].isascii() and (text[0].isalpha() or text[0] == "_")):
        return False
    return all(c.isascii() and (c.isalnum() or c in "_-") for c in text[1:])


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text``; raises :class:`ExpressionLexingError` with the position."""
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionLexingError(
            f"Exceeded max expression length {MAX_EXPRESSION_LENGTH}", text, 0,
            code="too-long")
    tokens: list[Token] = []
    pos = 0
    size = len(text)

    def add(kind: str, start: int, end: int) -> None:
        tokens.append(Token(kind, text[start:end], start_pos=start, end_pos=end))

    def unexpected(start: int, end: int) -> ExpressionLexingError:
        return ExpressionLexingError(
            f"Unexpected symbol: '{text[start:end]}'. Located at position {start + 1} within "
            f"expression: {text}", text, start, code="unexpected-symbol", symbol=text[start:end])

    def scan_word(start: int, allow_dot: bool) -> int:
        rest = _NUMBER_REST if allow_dot else _WORD_REST
        match = rest.match(text, start + 1)
        return match.end() if match else start + 1

    def number(start: int) -> int:
        end = scan_word(start, allow_dot=True)
        if math.isnan(js_string_to_number(text[start:end])):
            raise unexpected(start, end)
        add("NUMBER", start, end)
        return end

    while pos < size:
        ch = text[pos]
        previous = tokens[-1].type if tokens else None
        if ch in _SINGLE:
            add(_SINGLE[ch], pos, pos + 1)
            pos += 1
        elif ch == ".":
            if previous in _AFTER_VALUE:
                add("DOT", pos, pos + 1)
                pos += 1
            else:
                pos = number(pos)
        elif ch in "+-" or (ch.isdigit() and ch.isascii()):
            pos = number(pos)
        elif ch in "!<>":
            two = text.startswith("=", pos + 1)
            names = {"!": ("BANG", "NE"), "<": ("LT", "LE"), ">": ("GT", "GE")}[ch]
            add(names[1] if two else names[0], pos, pos + 1 + two)
            pos += 1 + two
        elif ch in "=&|":
            if text.startswith(ch, pos + 1):
                add({"=": "EQ", "&": "AND", "|": "OR"}[ch], pos, pos + 2)
                pos += 2
            else:
                raise unexpected(pos, scan_word(pos, allow_dot=False))
        elif ch in " \t\r\n":
            spaces = _SKIPPED.match(text, pos)
            pos = spaces.end() if spaces else pos + 1
        elif ch == "'":
            end = pos + 1
            while end < size and (text[end] != "'" or text.startswith("''", end)):
                end += 2 if text.startswith("''", end) else 1
            if end >= size:
                raise unexpected(pos, size)
            add("STRING", pos, end + 1)
            pos = end + 1
        else:
            end = scan_word(pos, allow_dot=False)
            word = text[pos:end]
            if previous != "DOT" and word in _KEYWORDS:
                add(_KEYWORDS[word], pos, end)
            elif previous != "DOT" and word in ("NaN", "Infinity"):
                add("NUMBER", pos, end)
            elif _legal_identifier(word):
                add("IDENT", pos, end)
            else:
                raise unexpected(pos, end)
            pos = end
    return tokens


class GitHubLexer(Lexer):
    """Adapts :func:`tokenize` to lark's lexer interface."""

    def __init__(self, lexer_conf: Any) -> None:
        self.lexer_conf = lexer_conf

    def lex(self, data: Any) -> Iterator[Token]:  # type: ignore[override]
        yield from data  # the parser is handed the token list made by tokenize()
