"""Completion for the REPL by position in the query.

``suggest(text, graph)`` reads the text before the cursor with the forgiving scanner, works out
where the cursor is (which clause, inside which aggregation, after which token) and returns the
candidates that fit there: ``transactions.`` -> the columns of transactions; ``FOR EACH `` -> the
tables with a primary key; ``COUNT(`` -> tables; the fourth argument of an aggregation -> units;
after an operand -> operators and the keywords that may follow in its clause. ``PQLCompleter``
wraps it (and dot-command names and arguments) as a prompt_toolkit Completer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from pql.graph import Graph
from pql.lexer import KEYWORD_TYPES, is_reserved

from .scan import Tok, scan, significant

__all__ = ["Candidate", "suggest", "PQLCompleter", "AGGREGATIONS", "UNITS"]

AGGREGATIONS = [w for w, k in KEYWORD_TYPES.items() if k == "AGG"]
UNITS = [w for w, k in KEYWORD_TYPES.items() if k == "UNIT"]
OPERATOR_WORDS = ["IS NULL", "IS NOT NULL", "IN", "NOT IN", "LIKE", "NOT LIKE", "CONTAINS", "NOT CONTAINS",
                  "STARTS WITH", "ENDS WITH"]
CLAUSES = ["PREDICT", "FOR EACH", "FOR", "WHERE", "ASSUMING", "RANK TOP", "CLASSIFY", "FORECAST", "TIMEFRAMES",
           "AND", "OR", "NOT"]

# The keywords that may follow a finished operand or condition, by the clause it is in.
_FOLLOW = {
    "PREDICT": ["AND", "OR", "RANK TOP", "CLASSIFY", "FORECAST", "FOR EACH", "FOR"],
    "FOR_EACH": ["WHERE", "ASSUMING"],
    "FOR": ["WHERE", "ASSUMING"],
    "WHERE": ["AND", "OR", "ASSUMING"],
    "ASSUMING": ["AND", "OR"],
    "PROBLEM": ["FOR EACH", "FOR"],
}
# The keyword that must come next after a problem keyword (numbers are typed, not completed).
_NEXT = {"RANK": ["TOP"], "CLASSIFY": ["TOP", "FOR EACH"], "TIMEFRAMES": ["FOR EACH", "FOR"],
         "IS": ["NULL", "NOT NULL"], "IS_NOT": ["NULL"], "NOT": ["IN", "LIKE", "CONTAINS"]}
_CLAUSE_TOKENS = {"PREDICT", "FOR_EACH", "FOR", "WHERE", "ASSUMING", "RANK", "CLASSIFY", "FORECAST", "TOP",
                  "TIMEFRAMES"}
_OPERAND_STARTERS = {"PREDICT", "WHERE", "AND", "OR", "NOT", "ASSUMING", "("}
_VALUE_KINDS = {"number", "string", "constant", "date", "neg_inf"}
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Candidate:
    """One completion: the text to insert and a short description (``meta``)."""

    text: str
    meta: str = ""


@dataclass
class _Frame:
    agg: str | None  # the aggregation this "(" opened, or None for a group / an array
    commas: int = 0
    where: bool = False


@dataclass
class _State:
    clause: str | None = None
    stack: list[_Frame] = field(default_factory=list)

    @property
    def frame(self) -> _Frame | None:
        return self.stack[-1] if self.stack else None


def _key(tok: Tok) -> str:
    """A token's grammar name: ``FOR_EACH`` for any spelling of FOR EACH, else its text upper-cased."""
    if tok.kind == "keyword" and " " in tok.upper:
        return tok.upper.replace(" ", "_")
    return tok.upper if tok.kind in ("keyword", "agg", "unit", "constant") else tok.text


def _walk(sig: list[Tok]) -> _State:
    st = _State()
    for i, tok in enumerate(sig):
        key = _key(tok)
        if tok.text == "(":
            prev = sig[i - 1] if i else None
            st.stack.append(_Frame(agg=prev.upper if prev is not None and prev.kind == "agg" else None))
        elif tok.text == ")":
            if st.stack:
                st.stack.pop()
        elif tok.text == "," and st.frame is not None:
            st.frame.commas += 1
        elif key == "WHERE" and st.frame is not None and st.frame.agg:
            st.frame.where = True
        elif tok.kind == "keyword" and key in _CLAUSE_TOKENS and not st.stack:
            st.clause = key
    return st


def _quote(name: str, *, column: bool = False) -> str:
    """Backticks when the parser needs them (after a dot, reserved words are plain column names)."""
    return name if _IDENT_RE.match(name) and (column or not is_reserved(name)) else f"`{name}`"


def _unquote(text: str) -> str:
    return text.strip("`")


def _tables(graph: Graph | None, *, keyed: bool = False) -> list[Candidate]:
    if graph is None:
        return []
    out = []
    for t in graph:
        if keyed and not t.primary_key:
            continue
        meta = f"table, primary key {t.primary_key}" if t.primary_key else "table"
        out.append(Candidate(_quote(t.name), meta))
    return out


def _columns(graph: Graph | None, table: str, *, key_only: bool = False, star: bool = False) -> list[Candidate]:
    t = graph.tables.get(table) if graph is not None else None
    if t is None:
        return []
    out = [Candidate("*", "all rows (COUNT)")] if star else []
    for c in t.columns.values():
        if key_only and c.name != t.primary_key:
            continue
        notes = [f"{c.dtype}/{c.stype}"]
        if c.name == t.primary_key:
            notes.append("primary key")
        fk = graph.foreign_key(table, c.name)
        if fk is not None:
            notes.append(f"-> {fk.dst_table}")
        if c.name == t.time_column:
            notes.append("time column")
        out.append(Candidate(_quote(c.name, column=True), ", ".join(notes)))
    return out


def _words(words: Iterable[str], meta: str) -> list[Candidate]:
    return [Candidate(w, meta) for w in words]


def _operands(graph: Graph | None, *, in_agg: bool) -> list[Candidate]:
    aggs = [] if in_agg else _words(AGGREGATIONS, "aggregation")
    return aggs + _tables(graph) + _words(["NOT"], "keyword")


def _after_operand(st: _State, value: bool) -> list[Candidate]:
    """After a finished operand (a column, an aggregation) or, with ``value``, a finished comparison."""
    frame = st.frame
    entity = st.clause == "FOR_EACH" and frame is None  # FOR EACH t.pk takes no operator (FOR t.pk IN does)
    ops = [] if value or entity else _words(OPERATOR_WORDS, "operator")
    if frame is not None and frame.agg is not None and not frame.where and frame.commas == 0:
        return _words(["WHERE"], "keyword")
    if frame is not None:
        return ops + _words(["AND", "OR"], "keyword")
    clause = "PROBLEM" if st.clause in ("RANK", "CLASSIFY", "FORECAST", "TOP", "TIMEFRAMES") else st.clause
    return ops + _words(_FOLLOW.get(clause or "", []), "keyword")


def _context(sig: list[Tok], graph: Graph | None) -> list[Candidate]:
    if not sig:
        return _words(["PREDICT"], "keyword")
    st = _walk(sig)
    prev = sig[-1]
    prev2 = sig[-2] if len(sig) >= 2 else None
    key = _key(prev)
    frame = st.frame
    in_agg = frame is not None and frame.agg is not None
    if prev.text == "." and prev2 is not None and prev2.kind in ("name", "quoted"):
        table = _unquote(prev2.text)
        key_only = not st.stack and st.clause in ("FOR_EACH", "FOR")
        star = in_agg and frame.agg == "COUNT" and frame.commas == 0 and not frame.where
        return _columns(graph, table, key_only=key_only, star=star)
    if key in ("FOR_EACH", "FOR") and not st.stack:
        return _tables(graph, keyed=True) + (_words(["EACH"], "keyword") if key == "FOR" else [])
    if in_agg and prev.text == "(":
        return _tables(graph)
    if in_agg and prev.text == "," and not (frame.where and frame.commas == 0):
        return _words(UNITS, "time unit") if frame.commas == 3 else []
    if key in _NEXT:
        return _words(_NEXT[key], "keyword")
    if key in _OPERAND_STARTERS:
        return _operands(graph, in_agg=in_agg)
    if key == "TOP" or (key == "FORECAST" and prev.kind == "keyword"):
        return []
    if prev.kind == "number" and prev2 is not None and _key(prev2) == "FORECAST":
        return _words(["TIMEFRAMES"], "keyword")
    if prev.kind == "number" and prev2 is not None and _key(prev2) == "TOP" and not st.stack:
        return _words(_FOLLOW["PROBLEM"], "keyword")
    if prev.kind == "op" or (prev.kind == "keyword" and key not in _CLAUSE_TOKENS):
        return _words(["TRUE", "FALSE", "NULL"], "constant")
    is_column = prev.kind in ("name", "quoted") and prev2 is not None and prev2.text == "."
    if is_column or prev.text in ("*", ")") or prev.kind in _VALUE_KINDS:
        value = prev.kind in _VALUE_KINDS or (prev.text == ")" and frame is None and _closes_array(sig))
        return _after_operand(st, value)
    return _words(CLAUSES, "keyword") + _words(AGGREGATIONS, "aggregation") + _tables(graph)


def _closes_array(sig: list[Tok]) -> bool:
    """Does the last ``)`` close a list of values (``IN (1, 2)``) rather than an aggregation or group?"""
    depth = 0
    for i in range(len(sig) - 1, -1, -1):
        t = sig[i].text
        if t == ")":
            depth += 1
        elif t == "(":
            depth -= 1
            if depth == 0:
                before = sig[i - 1] if i else None
                return before is not None and (before.kind == "op" or _key(before) in ("IN", "NOT_IN", "IS_IN"))
    return False


def _open_literal(tokens: list[Tok], text: str) -> bool:
    """Is the cursor inside a comment or an unterminated string?"""
    if not tokens:
        return False
    last = tokens[-1]
    if last.end != len(text):
        return False
    if last.kind == "comment":
        return True
    if last.kind == "string":
        return len(last.text) < 2 or last.text[-1] != last.text[0] or last.text.endswith("\\" + last.text[0])
    return False


def suggest(text: str, graph: Graph | None) -> tuple[str, list[Candidate]]:
    """``(prefix, candidates)`` for the cursor at the end of ``text``: ``prefix`` is the partly typed
    word the candidates replace; candidates are filtered by it (ignoring case)."""
    tokens = scan(text)
    if _open_literal(tokens, text):
        return "", []
    prefix = ""
    if tokens and tokens[-1].end == len(text) and tokens[-1].kind in ("keyword", "agg", "unit", "constant", "name",
                                                                      "quoted") and " " not in tokens[-1].text.strip():
        if not (tokens[-1].kind == "quoted" and len(tokens[-1].text) > 1 and tokens[-1].text.endswith("`")):
            prefix = tokens[-1].text
            tokens = tokens[:-1]
    cands = _context(significant(tokens), graph)
    want = _unquote(prefix).lower()
    lower = bool(prefix) and prefix.islower()
    out = []
    for c in cands:
        if not _unquote(c.text).lower().startswith(want):
            continue
        if lower and c.meta in ("keyword", "aggregation", "time unit", "operator", "constant"):
            c = Candidate(c.text.lower(), c.meta)
        out.append(c)
    return prefix, list(dict.fromkeys(out))


class PQLCompleter(Completer):
    """Completes queries by position, dot-command names, and each command's argument.

    ``commands`` maps a command name to ``(summary, argument kind)``; the argument kind is
    ``"query"`` (complete PQL), ``"table"`` (a table name), ``"setting"`` (one of ``settings``) or
    ``""`` (nothing).
    """

    def __init__(self, graph: Graph | None, commands: dict[str, tuple[str, str]] | None = None,
                 settings: Iterable[str] = ()) -> None:
        self.graph = graph
        self.commands = dict(commands or {})
        self.settings = list(settings)

    def candidates(self, text: str) -> tuple[str, list[Candidate]]:
        """``(prefix, candidates)`` for a line of REPL input (a query or a dot command)."""
        stripped = text.lstrip()
        if stripped.startswith("."):
            name, sep, arg = stripped.partition(" ")
            if not sep:
                return name, [Candidate(n, s) for n, (s, _) in self.commands.items() if n.startswith(name.lower())]
            kind = self.commands.get(name.lower(), ("", ""))[1]
            if kind == "table":
                word = arg.strip()
                return word, [c for c in _tables(self.graph) if _unquote(c.text).lower().startswith(_unquote(word).lower())]
            if kind == "query":
                return suggest(arg, self.graph)
            if kind == "setting" and "=" not in arg:
                word = arg.strip()
                return word, [Candidate(n, "setting") for n in self.settings if n.startswith(word)]
            return "", []
        return suggest(text, self.graph)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        prefix, cands = self.candidates(document.text_before_cursor)
        for c in cands:
            yield Completion(c.text, start_position=-len(prefix), display_meta=c.meta)

