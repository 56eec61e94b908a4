"""A forgiving scanner for PQL being typed, and the "is the statement complete?" test of the REPL.

The parser (pql/parser.py) only accepts whole queries; while the user types, the highlighter and
the completer need tokens of partial, possibly broken text. ``scan(text)`` splits any text into
tokens and never fails: an unterminated string runs to the end of the text (strings may span
lines), an unterminated quoted name to the end of its line, unknown characters become ``other``
tokens. Words are classified with the parser's own keyword
table (``pql.lexer.KEYWORD_TYPES``), with the same rules: keywords are all upper- or all
lower-case, and after a ``.`` every word is a column name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pql.errors import PQLError
from pql.lexer import KEYWORD_TYPES

__all__ = ["Tok", "scan", "significant", "is_complete", "word_kind"]

# Multi-word keywords: one token, their words share one case (as the grammar's terminals).
_MULTIWORD = {
    "FOR_EACH": r"for\s+each", "IS_NOT": r"is\s+not", "IS_IN": r"is\s+in", "NOT_IN": r"not\s+in",
    "NOT_LIKE": r"not\s+like", "NOT_CONTAINS": r"not\s+contains", "STARTS_WITH": r"starts\s+with",
    "ENDS_WITH": r"ends\s+with",
}

# (kind, pattern) in priority order; the first match at a position wins.
_RULES: list[tuple[str, str]] = [
    ("ws", r"\s+"),
    ("comment", r"#[^\n]*|--[^\n]*"),
    ("string", r"\"(?:[^\"\\]|\\.)*(?:\"|$)|'(?:[^'\\]|\\.)*(?:'|$)"),
    ("quoted", r"`[^`\n]*`?"),
    ("date", r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[ \t]+|T)[0-9]{1,2}:[0-9]{1,2}(?::[0-9]{1,2}(?:\.[0-9]+)?)?)?(?![0-9])"),
    ("neg_inf", r"-(?:infinity|inf)(?![A-Za-z0-9_])"),
    ("number", r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"),
    *[(name, pat + r"(?![A-Za-z0-9_])") for name, pat in _MULTIWORD.items()],
    ("word", r"[A-Za-z_][A-Za-z0-9_]*"),
    ("op", r"!=|<>|==|<=|>=|=|<|>"),
    ("punct", r"[().,*]"),
    ("other", r"."),
]
_SCANNER = re.compile("|".join(f"(?P<{k}>{p})" for k, p in _RULES), re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Tok:
    """One token: ``kind`` is a scanner rule name, or for words ``keyword``, ``agg``, ``unit``,
    ``constant`` or ``name``; ``start``/``end`` are offsets into the text."""

    kind: str
    text: str
    start: int
    end: int

    @property
    def upper(self) -> str:
        return " ".join(self.text.upper().split())


def _case_ok(word: str) -> bool:
    return word.isupper() or word.islower()


def word_kind(word: str, after_dot: bool) -> str:
    """How a word reads to the parser: a keyword kind, or ``name``."""
    if after_dot or not _case_ok(word):
        return "name"
    kw = KEYWORD_TYPES.get(word.upper())
    if kw is None:
        return "name"
    return {"AGG": "agg", "UNIT": "unit", "BOOL": "constant", "INF": "constant", "NULL": "constant"}.get(kw, "keyword")


def scan(text: str) -> list[Tok]:
    """Every token of ``text`` (whitespace and comments included), in order; never raises."""
    out: list[Tok] = []
    prev_sig: Tok | None = None
    for m in _SCANNER.finditer(text):
        kind = m.lastgroup or "other"
        value = m.group()
        if kind == "word":
            kind = word_kind(value, prev_sig is not None and prev_sig.text == ".")
        elif kind in _MULTIWORD:
            kind = "keyword" if _same_case(value) else "name"
        tok = Tok(kind, value, m.start(), m.end())
        out.append(tok)
        if kind not in ("ws", "comment"):
            prev_sig = tok
    return out


def _same_case(text: str) -> bool:
    words = text.split()
    return all(w.isupper() for w in words) or all(w.islower() for w in words)


def significant(tokens: list[Tok]) -> list[Tok]:
    return [t for t in tokens if t.kind not in ("ws", "comment")]


def _blank(text: str) -> bool:
    """Only whitespace and comments."""
    return all(t.kind in ("ws", "comment") for t in scan(text))


def _offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    return sum(len(x) + 1 for x in lines[: line - 1]) + column - 1


def is_complete(text: str) -> bool:
    """Should the REPL run ``text`` now (True), or keep reading lines (False)?

    A query is complete when it parses, or when its syntax error is anything but a premature end:
    an unexpected end of input, a clause keyword with nothing after it yet (``PREDICT``,
    ``FOR EACH``, ``WHERE``), a target still waiting for ``FOR EACH``, an open string. Errors
    inside the text are complete: running shows them at once. Blank text is complete (nothing).
    """
    if _blank(text):
        return True
    import pql

    try:
        pql.parse(text)
    except PQLError as err:
        return not _waits_for_more(text, err)
    except Exception:  # noqa: BLE001 - a parser bug is reported when the text is run
        return True
    return True


def _waits_for_more(text: str, err: PQLError) -> bool:
    if err.span is None:
        return False
    start = _offset(text, err.span.line, err.span.column)
    end = _offset(text, err.span.end_line, err.span.end_column)
    if err.code == "E001":
        return err.message.startswith("unexpected end of input")
    if err.code == "E003":  # missing FOR EACH: at the end of input, not before ASSUMING
        return _blank(text[start:])
    if err.code == "E018":  # an empty clause whose keyword is the last token
        return _blank(text[end:])
    if err.code == "E007":  # an open string may continue on the next line; a quoted name may not
        return text[start:start + 1] in ("'", '"')
    return False
