"""PQL syntax highlighting for the REPL: a prompt_toolkit Lexer over ``pql.repl.scan`` tokens.

Token kinds map to style classes (``class:pql.keyword`` ...) through one table; the colours live
in ``STYLE``. With a graph, table names (a word before ``.``) and column names (after it) that
exist get their own classes, and unknown ones are underlined.
"""

from __future__ import annotations

from typing import Callable

from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.lexers import Lexer
from prompt_toolkit.styles import Style

from pql.graph import Graph

from .scan import Tok, scan

__all__ = ["PQLLexer", "STYLE", "token_class", "highlight"]

# Token kind -> style class.
_CLASS = {
    "keyword": "pql.keyword", "agg": "pql.aggregation", "unit": "pql.unit", "constant": "pql.constant",
    "string": "pql.string", "quoted": "pql.name", "date": "pql.number", "number": "pql.number",
    "neg_inf": "pql.constant", "comment": "pql.comment", "op": "pql.operator", "punct": "pql.punct",
    "name": "pql.name", "other": "pql.error", "ws": "",
}

#: Colours of the REPL: the query classes above and the output classes of the shell.
STYLE = Style.from_dict({
    "pql.keyword": "bold ansiblue",
    "pql.aggregation": "ansimagenta",
    "pql.unit": "ansicyan",
    "pql.constant": "ansiyellow",
    "pql.string": "ansigreen",
    "pql.number": "ansiyellow",
    "pql.comment": "italic ansibrightblack",
    "pql.operator": "",
    "pql.punct": "",
    "pql.name": "",
    "pql.table": "bold",
    "pql.column": "",
    "pql.unknown": "underline",
    "pql.error": "ansired",
    # output
    "error": "bold ansired",
    "warning": "bold ansiyellow",
    "caret": "ansired",
    "hint": "ansicyan",
    "heading": "bold",
    "dim": "ansibrightblack",
    "ok": "ansigreen",
    "prompt": "bold",
    "continuation": "ansibrightblack",
})


def _name(tok: Tok) -> str:
    return tok.text[1:-1] if tok.kind == "quoted" and tok.text.endswith("`") and len(tok.text) > 1 else tok.text


def token_class(tokens: list[Tok], graph: Graph | None) -> list[str]:
    """The style class of each token; names are told apart as tables or columns with a graph."""
    classes = [_CLASS.get(t.kind, "") for t in tokens]
    if graph is None:
        return classes
    sig = [i for i, t in enumerate(tokens) if t.kind not in ("ws", "comment")]
    for n, i in enumerate(sig):
        tok = tokens[i]
        if tok.kind not in ("name", "quoted"):
            continue
        nxt = tokens[sig[n + 1]] if n + 1 < len(sig) else None
        prev = tokens[sig[n - 1]] if n >= 1 else None
        before = tokens[sig[n - 2]] if n >= 2 else None
        if nxt is not None and nxt.text == ".":
            classes[i] = "pql.table" if _name(tok) in graph.tables else "pql.unknown"
        elif prev is not None and prev.text == "." and before is not None:
            table = graph.tables.get(_name(before))
            if table is not None:
                classes[i] = "pql.column" if _name(tok) in table.columns else "pql.unknown"
    return classes


def highlight(text: str, graph: Graph | None = None) -> StyleAndTextTuples:
    """``text`` as prompt_toolkit formatted text, one fragment per token."""
    tokens = scan(text)
    return [(f"class:{c}" if c else "", t.text) for t, c in zip(tokens, token_class(tokens, graph))]


def _split_lines(fragments: StyleAndTextTuples) -> list[StyleAndTextTuples]:
    lines: list[StyleAndTextTuples] = [[]]
    for style, text in fragments:
        parts = text.split("\n")
        for k, part in enumerate(parts):
            if k:
                lines.append([])
            if part:
                lines[-1].append((style, part))
    return lines


class PQLLexer(Lexer):
    """Highlights the whole document at once (strings may span lines), then serves lines."""

    def __init__(self, graph: Graph | None = None) -> None:
        self.graph = graph

    def lex_document(self, document: Document) -> Callable[[int], StyleAndTextTuples]:
        lines = _split_lines(highlight(document.text, self.graph))

        def get_line(lineno: int) -> StyleAndTextTuples:
            return lines[lineno] if 0 <= lineno < len(lines) else []

        return get_line
