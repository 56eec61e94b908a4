"""Keywords and the post-lexer of the PQL grammar (PQL-SPEC §3).

The grammar lexes every word as ``IDENT``. The post-lexer retypes reserved words to their
keyword terminal when they are written all upper- or all lower-case, and raises E004 for a
mixed-case keyword. After a ``.`` every word is a column name, so ``users.count`` stays an
``IDENT``. Multi-word keywords (``FOR EACH``, ``NOT IN`` ...) are single terminals whose words
must share one case.

A per-parse context (thread-local) holds the source text, the tokens seen so far (for error
messages), the desugaring warnings and the nesting depth of the nodes built so far.
"""

from __future__ import annotations

import threading
from typing import Iterator

from lark.lark import PostLex
from lark.lexer import Token

from pql.ast import Span
from pql.errors import PQLSyntaxError, PQLWarning

__all__ = [
    "MAX_TOKENS", "RESERVED", "KEYWORD_TYPES", "MULTIWORD_TYPES", "ParseContext", "PQLPostLex",
    "context", "token_span", "is_reserved",
]

#: Longest query accepted, in tokens (comments and whitespace excluded). Longer input is E001 with
#: its own message; this bounds parse time (a few µs per token) for pathological input.
MAX_TOKENS = 100_000

# Reserved word (upper-case) -> terminal type in grammar/pql.lark.
_SINGLE = "PREDICT FOR EACH WHERE ASSUMING AND OR NOT IS IN LIKE CONTAINS STARTS ENDS WITH NULL " \
          "RANK CLASSIFY TOP FORECAST TIMEFRAMES"
KEYWORD_TYPES: dict[str, str] = {w: w for w in _SINGLE.split()}
KEYWORD_TYPES.update({w: "AGG" for w in "SUM AVG MIN MAX COUNT COUNT_DISTINCT FIRST LAST LIST_DISTINCT".split()})
KEYWORD_TYPES.update({w: "UNIT" for w in "SECONDS MINUTES HOURS DAYS WEEKS MONTHS".split()})
KEYWORD_TYPES.update({"TRUE": "BOOL", "FALSE": "BOOL", "INF": "INF", "INFINITY": "INF"})

#: Every reserved word, upper-case (§3.2). A table with one of these names must be backticked.
RESERVED: frozenset[str] = frozenset(KEYWORD_TYPES)

#: Terminals that are one multi-word keyword (their words must share one case).
MULTIWORD_TYPES = frozenset({"FOR_EACH", "IS_NOT", "IS_IN", "NOT_IN", "NOT_LIKE", "NOT_CONTAINS",
                             "STARTS_WITH", "ENDS_WITH"})


def is_reserved(word: str) -> bool:
    """True if ``word`` is a reserved word ignoring case (so a table named so needs backticks)."""
    return word.upper() in RESERVED


def token_span(tok: Token) -> Span:
    return Span(tok.line, tok.column, tok.end_line, tok.end_column)


class ParseContext:
    """State of one parse: the source, tokens seen, warnings, node depths."""

    __slots__ = ("text", "tokens", "warnings", "depth")

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[Token] = []
        self.warnings: list[PQLWarning] = []
        self.depth: dict[int, int] = {}


_local = threading.local()


def context() -> ParseContext:
    return _local.ctx


def set_context(ctx: ParseContext | None) -> None:
    _local.ctx = ctx


def _case_ok(word: str) -> bool:
    return word.isupper() or word.islower()


def _bool_case_ok(word: str) -> bool:
    return _case_ok(word) or word in ("True", "False")


def _multiword_case_ok(text: str) -> bool:
    words = text.split()
    return all(w.isupper() for w in words) or all(w.islower() for w in words)


def _e004(tok: Token, written: str, upper: str, text: str) -> PQLSyntaxError:
    hints = []
    rest = text[tok.end_pos:].lstrip()
    if rest.startswith(".") and " " not in written:
        hints.append(f"for a table named {written} write `{written}`")
    return PQLSyntaxError(
        f"keyword '{written}' must be all upper- or lower-case: write '{upper}'",
        code="E004", span=token_span(tok), hints=hints)


class PQLPostLex(PostLex):
    """Retype reserved words to keyword terminals and enforce keyword case (E004)."""

    # Always lexed, whatever the parser state, so that errors name the real token.
    always_accept = ("IDENT", "QUOTED_NAME", "INT", "DECIMAL", "STRING", "DATETIME", "NEG_INF", "BADOP")

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        ctx = context()
        history = ctx.tokens
        append = history.append
        kw_types = KEYWORD_TYPES
        prev_type = None
        for tok in stream:
            ttype = tok.type
            if ttype == "IDENT":
                if prev_type != "DOT":
                    value = tok.value
                    kw = kw_types.get(value.upper())
                    if kw is not None:
                        ok = _bool_case_ok(value) if kw == "BOOL" else _case_ok(value)
                        if not ok:
                            raise _e004(tok, value, value.upper(), ctx.text)
                        tok.type = kw
            elif ttype in MULTIWORD_TYPES:
                if not _multiword_case_ok(tok.value):
                    raise _e004(tok, tok.value, " ".join(tok.value.upper().split()), ctx.text)
            elif ttype == "NEG_INF":
                if not _case_ok(tok.value[1:]):
                    raise _e004(tok, tok.value, tok.value.upper(), ctx.text)
            append(tok)
            if len(history) > MAX_TOKENS:
                raise PQLSyntaxError(f"the query is too long: more than {MAX_TOKENS} tokens", code="E001",
                                     span=token_span(tok), hints=("list many entity ids in a table, not in the query",))
            prev_type = tok.type
            yield tok
