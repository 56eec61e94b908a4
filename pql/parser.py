"""PQL text -> AST (PQL-SPEC §3, §4, §9.2).

``parse(text)`` returns a :class:`pql.ast.Query` or raises :class:`PQLSyntaxError` with the
code, message, span and hints of §9.2; ``parse_with_warnings(text)`` also returns the
desugaring warnings (W101, W102, W111). The grammar lives in ``grammar/pql.lark`` (package
``pql.grammar``); the Lark object is built once per process.

Building the LALR tables takes about 0.1 s, so the built parser is also kept on disk, in
``$PQL_CACHE_DIR`` (set it empty to disable), else ``$XDG_CACHE_HOME/pql``, else ``~/.cache/pql``.
The file name and its first line carry a SHA-256 over everything the tables depend on (grammar
text, Lark options, Lark and Python versions), so a changed grammar or Lark never loads an old
parser. A missing, foreign-owned, corrupt or truncated file is ignored and rebuilt; the file is
written atomically (temporary file, then rename); an unwritable directory only costs the rebuild.

The LALR parser builds the AST inline (no parse tree), so input of any length or depth is
handled without recursion. Two documented limits, both E001 with their own message: nodes nested
more than ``MAX_DEPTH`` (200) levels (NOT, AND/OR chains, inline filters; parentheses alone add
no depth), and more than ``MAX_TOKENS`` (100,000) tokens, which bounds the parse time of
pathological input to about a second.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.resources
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import lark
from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedToken
from lark.lexer import Token

from pql.ast import Query, Span
from pql.astbuilder import MAX_DEPTH, ASTBuilder
from pql.errors import PQLError, PQLInternalError, PQLSyntaxError, PQLWarning
from pql.lexer import KEYWORD_TYPES, MAX_TOKENS, ParseContext, PQLPostLex, set_context, token_span

__all__ = ["parse", "parse_with_warnings", "lark_parser", "build_lark_parser", "parser_cache_dir", "grammar_text",
           "MAX_DEPTH", "MAX_TOKENS"]


def grammar_text() -> str:
    return (importlib.resources.files("pql.grammar") / "pql.lark").read_text(encoding="utf-8")


# Options stored in the tables (part of the cache key) and options given again on every load.
_BUILD_OPTIONS: dict[str, Any] = {"parser": "lalr", "lexer": "contextual", "start": "query",
                                  "maybe_placeholders": True}
_LOAD_OPTIONS: dict[str, Any] = {"propagate_positions": True}
_CACHE_FORMAT = "pql-parser-1"
CACHE_ENV = "PQL_CACHE_DIR"


@functools.lru_cache(maxsize=None)
def lark_parser() -> Lark:
    """The LALR(1) parser with the contextual lexer and the inline AST builder (once per process)."""
    return build_lark_parser(parser_cache_dir())


def parser_cache_dir() -> Path | None:
    """``$PQL_CACHE_DIR`` (empty: no disk cache), else ``$XDG_CACHE_HOME/pql``, else ``~/.cache/pql``."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return Path(env).expanduser() if env.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or ""
    try:
        root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    except RuntimeError:  # no home directory
        return None
    return root / "pql"


def build_lark_parser(cache_dir: Path | None = None) -> Lark:
    """A new parser: loaded from ``cache_dir`` when a valid file for this grammar is there, else
    built (and saved there when the directory is writable)."""
    grammar = grammar_text()
    if cache_dir is None:
        return _build(grammar)
    key = _cache_key(grammar)
    path = cache_dir / f"parser-{key[:32]}.pickle"
    parser = _load_cached(path, key)
    if parser is None:
        parser = _build(grammar)
        _save_cached(parser, path, key)
    return parser


def _build(grammar: str) -> Lark:
    return Lark(grammar, **_BUILD_OPTIONS, **_LOAD_OPTIONS, transformer=ASTBuilder(), postlex=PQLPostLex())


def _cache_key(grammar: str) -> str:
    """SHA-256 over everything the saved tables depend on."""
    parts = [_CACHE_FORMAT, lark.__version__, "%d.%d" % sys.version_info[:2], repr(sorted(_BUILD_OPTIONS.items())),
             repr(sorted(_LOAD_OPTIONS.items())), repr(PQLPostLex.always_accept), grammar]
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def _header(key: str) -> bytes:
    return f"{_CACHE_FORMAT} {key}\n".encode("ascii")


def _load_cached(path: Path, key: str) -> Lark | None:
    """The saved parser, or None when the file is missing, not ours, for another key or unreadable."""
    try:
        with open(path, "rb") as f:
            if hasattr(os, "getuid") and os.fstat(f.fileno()).st_uid != os.getuid():
                return None  # only unpickle files this user wrote
            if f.readline(200) != _header(key):
                return None
            parser = Lark.__new__(Lark)
            # Lark's own cache loads this way; transformer and post-lexer are fresh objects.
            return parser._load(f, transformer=ASTBuilder(), postlex=PQLPostLex(), **_LOAD_OPTIONS)
    except Exception:  # noqa: BLE001 - missing, truncated or corrupt: rebuild
        return None


def _save_cached(parser: Lark, path: Path, key: str) -> None:
    """Write atomically (temporary file, then rename); any failure only means no cache."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".parser-", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(_header(key))
            parser.save(f, exclude_options=set(_LOAD_OPTIONS) | {"transformer", "postlex"})
        os.replace(tmp, path)
        tmp = None
    except Exception:  # noqa: BLE001 - unwritable or full: the parser still works, only uncached
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def parse(text: str | bytes) -> Query:
    """Parse PQL text into a :class:`Query` (raises :class:`PQLSyntaxError`)."""
    return parse_with_warnings(text)[0]


def parse_with_warnings(text: str | bytes) -> tuple[Query, list[PQLWarning]]:
    """Parse PQL text; also return the desugaring warnings (W101, W102, W111)."""
    text = _source_text(text)
    ctx = ParseContext(text)
    set_context(ctx)
    try:
        query = lark_parser().parse(text)
    except PQLError:
        raise
    except Exception as e:
        raise _translate(e, ctx) from (None if isinstance(e, (UnexpectedToken, UnexpectedCharacters)) else e)
    finally:
        set_context(None)
    return query, ctx.warnings


def _translate(e: Exception, ctx: ParseContext) -> PQLError:
    """Lark's errors -> coded syntax errors; anything else is a bug in pql (E900)."""
    try:
        if isinstance(e, UnexpectedToken):
            return _unexpected_token(e, ctx)
        if isinstance(e, UnexpectedCharacters):
            return _unexpected_character(ctx.text, e.pos_in_stream, e.line, e.column)
    except Exception as bug:  # noqa: BLE001 - reported as E900 below
        e = bug
    return PQLInternalError(f"internal error, please report: {type(e).__name__}: {e}")


# --- input ----------------------------------------------------------------------------------

_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _source_text(text: str | bytes) -> str:
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            good = raw[:e.start].decode("utf-8")
            line, col = _position(good, len(good))
            raise PQLSyntaxError(f"the query is not valid UTF-8: byte 0x{raw[e.start]:02x} at {line}:{col}",
                                 code="E005", span=Span(line, col, line, col + 1),
                                 hints=("save the query as UTF-8",)) from None
    if not isinstance(text, str):
        raise TypeError(f"parse() takes str or bytes, not {type(text).__name__}")
    if text.startswith("\ufeff"):
        text = " " + text[1:]  # a byte-order mark reads as a space, so columns still match the source
    if not text.isascii():
        m = _SURROGATE_RE.search(text)
        if m is not None:
            raise _unexpected_character(text, m.start(), *_position(text, m.start()))
    return text


# --- unexpected characters: E005, E007 --------------------------------------------------------

_CHAR_HINTS = {
    ";": "remove ';'",
    "+": "arithmetic is not supported",
    "-": "arithmetic is not supported",
    "/": "arithmetic is not supported",
    "%": "arithmetic is not supported",
    "!": "use != for 'not equal'",
}
_QUOTES = {"'": ("string", "'"), '"': ("string", '"'), "`": ("quoted name", "`")}


def _show_char(ch: str) -> str:
    return ch if ch.isprintable() else f"\\u{ord(ch):04x}"


def _unexpected_character(text: str, pos: int, line: int, col: int) -> PQLSyntaxError:
    ch = text[pos]
    if ch in _QUOTES:
        what, quote = _QUOTES[ch]
        if ch == "`" and text[pos + 1:pos + 2] == "`":
            return PQLSyntaxError(f"quoted name opened at {line}:{col} is empty; write at least one character "
                                  "between the backticks", code="E007", span=Span(line, col, line, col + 2))
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        return PQLSyntaxError(f"{what} opened at {line}:{col} is not closed; add {quote}", code="E007",
                              span=Span(line, col, line, col + max(end - pos, 1)))
    hints = []
    if text.startswith("/*", pos):
        hints.append("comments start with # or --")
    elif ch in _CHAR_HINTS:
        hints.append(_CHAR_HINTS[ch])
    return PQLSyntaxError(f"unexpected character '{_show_char(ch)}'", code="E005",
                          span=Span(line, col, line, col + 1), hints=hints)


# --- unexpected tokens: E001, E002, E003, E016, E017, E018 ------------------------------------

# How expected terminals read in messages, in the order they are listed.
_DISPLAY = {
    "$END": "end of input", "PREDICT": "PREDICT", "AGG": "an aggregation", "IDENT": "a name",
    "QUOTED_NAME": "a name", "DOT": "'.'", "STAR": "'*'", "LPAR": "'('", "RPAR": "')'", "COMMA": "','",
    "EQ": "'='", "NE": "'!='", "LT": "'<'", "LE": "'<='", "GT": "'>'", "GE": "'>='",
    "IS": "IS", "IS_NOT": "IS NOT", "IN": "IN", "NOT_IN": "NOT IN", "IS_IN": "IS IN",
    "LIKE": "LIKE", "NOT_LIKE": "NOT LIKE", "CONTAINS": "CONTAINS", "NOT_CONTAINS": "NOT CONTAINS",
    "STARTS_WITH": "STARTS WITH", "ENDS_WITH": "ENDS WITH", "AND": "AND", "OR": "OR", "NOT": "NOT",
    "INT": "an integer", "DECIMAL": "a decimal", "STRING": "a string", "BOOL": "a boolean", "NULL": "NULL",
    "DATETIME": "a date", "NEG_INF": "-INF", "UNIT": "a time unit", "RANK": "RANK", "CLASSIFY": "CLASSIFY",
    "TOP": "TOP", "FORECAST": "FORECAST", "TIMEFRAMES": "TIMEFRAMES", "FOR_EACH": "FOR EACH", "FOR": "FOR",
    "WHERE": "WHERE", "ASSUMING": "ASSUMING",
}
_DISPLAY["OPERATOR"] = "an operator (=, !=, <, <=, >, >=, IS, IN, NOT IN, LIKE, CONTAINS, …)"
_OPERATORS = frozenset({"EQ", "NE", "LT", "LE", "GT", "GE", "IS", "IS_NOT", "IN", "NOT_IN", "IS_IN", "LIKE",
                        "NOT_LIKE", "CONTAINS", "NOT_CONTAINS", "STARTS_WITH", "ENDS_WITH"})
_ORDER = {name: i for i, name in enumerate(_DISPLAY)}
_ORDER["OPERATOR"] = _ORDER["EQ"]

# Terminals the grammar accepts only to give a better error; hidden from "expected" lists
# when the legitimate alternative is also expected.
_PERMISSIVE = [("UNIT", "IDENT"), ("RANK", "TOP"), ("DATETIME", "NEG_INF"), ("DATETIME", "LPAR")]


def _expected(names: set[str]) -> str:
    names = set(names)
    for present, hidden in _PERMISSIVE:
        if present in names:
            names.discard(hidden)
    if "INT" in names and "DATETIME" not in names:
        names.discard("DECIMAL")
    if _OPERATORS <= names:
        names -= _OPERATORS
        names.add("OPERATOR")
    shown = list(dict.fromkeys(_DISPLAY.get(n, n) for n in sorted(names, key=lambda n: _ORDER.get(n, 99))))
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def _show_token(tok: Token) -> str:
    text = str(tok.value)
    return text if len(text) <= 40 else text[:37] + "..."


def _eof_span(ctx: ParseContext) -> Span:
    if not ctx.tokens:
        line, col = _position(ctx.text, len(ctx.text))
        return Span(line, col, line, col + 1)
    last = ctx.tokens[-1]
    return Span(last.end_line, last.end_column, last.end_line, last.end_column + 1)


# E018: previous token (a clause keyword) -> (tokens that end the clause, clause name, what).
_TARGET_WHAT = "a column, an aggregation or a condition"
_EMPTY_CLAUSES = {
    "PREDICT": ({"FOR_EACH", "FOR", "RANK", "CLASSIFY", "FORECAST", "TOP", "WHERE", "ASSUMING", "$END"},
                "PREDICT", _TARGET_WHAT),
    "FOR_EACH": ({"WHERE", "ASSUMING", "$END"}, "FOR EACH", "<table>.<primary key>"),
    "FOR": ({"WHERE", "ASSUMING", "$END", "EQ", "IN"}, "FOR", "<table>.<primary key> = <id>"),
    "WHERE": ({"ASSUMING", "$END", "COMMA", "RPAR"}, "WHERE", "a condition"),
    "ASSUMING": ({"$END"}, "ASSUMING", "a condition"),
}

# Multi-word keywords split by a comment: previous word -> next word.
_SPLIT_KEYWORDS = {("FOR", "EACH"), ("STARTS", "WITH"), ("ENDS", "WITH")}


def _next_char(ctx: ParseContext, tok: Token) -> str:
    rest = ctx.text[tok.end_pos:].lstrip()
    return rest[:1]


def _before(ctx: ParseContext, tok: Token) -> Token | None:
    """The token before ``tok`` (which is one of the last two seen)."""
    history = ctx.tokens
    for i in (len(history) - 1, len(history) - 2):
        if i >= 1 and history[i] is tok:
            return history[i - 1]
    return None


def _doubled_quote(tok: Token, prev: Token | None) -> bool:
    """'it''s': two adjacent strings, an SQL-style escape that PQL does not have."""
    return tok.type == "STRING" and prev is not None and prev.type == "STRING" and prev.end_pos == tok.start_pos


def _hints(tok: Token, prev: Token | None, expected: set[str], ctx: ParseContext) -> list[str]:
    hints = []
    ttype = tok.type
    if ttype == "IDENT" and "STRING" in expected:
        hints.append(f"quote text: '{tok.value}'")
    if ttype == "BADOP":
        hints.append("use !=" if tok.value == "<>" else "use =")
    if ttype == "STAR" and (prev is None or prev.type != "DOT"):
        hints.append("arithmetic is not supported")
    elif ttype == "STAR" and _before(ctx, prev) is not None:
        table = _before(ctx, prev).value
        hints.append(f"'{table}.*' is only valid inside COUNT; write COUNT({table}.*, …) or name a column")
    if ttype == "WHERE" and "FOR_EACH" in expected:
        hints.append("filter inside the aggregation: SUM(t.c WHERE …, 0, 30)")
    if _doubled_quote(tok, prev):
        hints.append("escape as \\' or use double quotes")
    if prev is not None and (prev.type, ttype) in _SPLIT_KEYWORDS:
        hints.append(f"no comment may separate the words of {prev.value.upper()} {tok.value.upper()}")
    for word in (tok, prev):
        if word is not None and word.type != "IDENT" and str(word.value).upper() in KEYWORD_TYPES \
                and _next_char(ctx, word) == ".":
            hints.append(f"'{word.value}' is a reserved word; for a table named {word.value} write `{word.value}`")
            break
    return hints


def _accepts(e: UnexpectedToken) -> set[str]:
    """The terminals that can really follow here (LALR's merged lookaheads over-approximate)."""
    state = e.state
    if state is None:
        return set(e.expected)
    conf = copy.copy(state.parse_conf)
    conf.callbacks = {}  # probe without building AST nodes
    accepted = set()
    for name in state.parse_conf.parse_table.states[state.position]:
        if not name.isupper():
            continue
        probe = state.copy(deepcopy_values=False)
        probe.parse_conf = conf
        try:
            probe.feed_token(Token(name, ""), name == "$END")
        except UnexpectedToken:
            continue
        accepted.add(name)
    return accepted


def _unexpected_token(e: UnexpectedToken, ctx: ParseContext) -> PQLSyntaxError:
    tok = e.token
    expected = _accepts(e)
    history = ctx.tokens
    if history and history[-1] is tok:
        prev = history[-2] if len(history) >= 2 else None
    else:
        prev = history[-1] if history else None
    ttype = tok.type
    is_end = ttype == "$END"
    shown = _show_token(tok)
    span = _eof_span(ctx) if is_end else token_span(tok)

    if prev is None:
        found = "" if is_end else shown
        return PQLSyntaxError(f"a query starts with PREDICT, found '{found}'", code="E002", span=span,
                              hints=("the query is empty",) if is_end else ())
    clause = _EMPTY_CLAUSES.get(prev.type)
    if clause is not None and ttype in clause[0]:
        return PQLSyntaxError(f"the {clause[1]} clause is empty; expected {clause[2]}", code="E018",
                              span=token_span(prev))
    if "FOR_EACH" in expected and ttype in ("$END", "ASSUMING"):
        return PQLSyntaxError("missing FOR EACH after the target; add 'FOR EACH <table>.<primary key>'",
                              code="E003", span=span)
    if "$END" in expected and not is_end and ttype != "BADOP" and not _doubled_quote(tok, prev):
        return PQLSyntaxError(f"unexpected '{shown}' after the query; a query has one entity — model pairs "
                              "as a table of pairs", code="E016", span=span)
    if "FOR_EACH" in expected and (ttype in ("COMMA", "AGG", "QUOTED_NAME")
                                   or (ttype == "IDENT" and _next_char(ctx, tok) == ".")):
        return PQLSyntaxError(f"unexpected '{shown}' in PREDICT; a query has exactly one target",
                              code="E017", span=span)
    what = "end of input" if is_end else f"'{shown}'"
    return PQLSyntaxError(f"unexpected {what}; expected {_expected(expected)}", code="E001", span=span,
                          hints=_hints(tok, prev, expected, ctx))
