"""Parse tree -> AST (PQL-SPEC §4.2, §4.3, §5).

A Lark ``Transformer`` run inline by the LALR parser: each rule is reduced bottom-up into an
AST node as soon as it is recognised, so no parse tree is built and deep input needs no
recursion. One short method per rule. The builder desugars (§4.3), records warnings
(W101, W102, W111) and raises the parse-stage codes that the permissive grammar leaves to
it (E006, E008-E015, E019, E208, E209, E403-E406, E501-E503), plus the nesting limit.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from lark import Transformer, v_args
from lark.lexer import Token

from pql import ast as A
from pql.errors import PQLSyntaxError, PQLWarning, did_you_mean
from pql.formatter import format_literal, format_node
from pql.lexer import context, token_span

__all__ = ["ASTBuilder", "MAX_DEPTH", "decode_string"]

#: Deepest nesting of conditions, NOT, AND/OR chains and inline filters that parse accepts.
#: Parentheses alone add no depth. Deeper input is E001 with its own message.
MAX_DEPTH = 200

INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)
TOP_RANGE = (1, 1000)
FORECAST_RANGE = (1, 10000)
UNIT_WORDS = [u.word for u in A.TimeUnit]


def _err(code: str, message: str, where: Any, hints: tuple[str, ...] = ()) -> PQLSyntaxError:
    return PQLSyntaxError(message, code=code, span=_span(where), hints=hints)


def _span(*items: Any) -> A.Span | None:
    """Span from the first to the last of ``items`` (tokens or nodes; None ignored)."""
    spans = [token_span(x) if isinstance(x, Token) else x if isinstance(x, A.Span) else x.span
             for x in items if x is not None]
    spans = [s for s in spans if s is not None]
    if not spans:
        return None
    first, last = spans[0], spans[-1]
    return A.Span(first.line, first.column, last.end_line, last.end_column)


def _warn(code: str, message: str, where: Any) -> None:
    context().warnings.append(PQLWarning(code, message, span=_span(where)))


def _nest(node: A.Node, at: Token, *children: Any) -> A.Node:
    """Record the nesting depth of ``node``; past MAX_DEPTH raise E001 at its keyword ``at``."""
    depth = context().depth
    d = 1 + max((depth.get(id(c), 0) for c in children if c is not None), default=0)
    if d > MAX_DEPTH:
        hints = ("use IN (…) instead of long OR chains",) if isinstance(node, A.BoolOp) else ()
        raise _err("E001", f"the query nests more than {MAX_DEPTH} levels deep (conditions, NOT, AND/OR "
                           "chains and inline filters); simplify it", at, hints)
    depth[id(node)] = d
    return node


def _int_in(tok: Token, bounds: tuple[int, int]) -> int:
    text = tok.value.lstrip("-").lstrip("0")
    value = int(tok.value) if len(text) <= 20 else None  # str -> int is limited to 4300 digits
    if value is None or not bounds[0] <= value <= bounds[1]:
        shown = tok.value if len(tok.value) <= 40 else tok.value[:37] + "..."
        raise _err("E011", f"{shown} is out of range ({bounds[0]} … {bounds[1]})", tok)
    return value


# --- literals -------------------------------------------------------------------------------

_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.S)


def _offset_span(tok: Token, offset: int, length: int) -> A.Span:
    """Span of ``tok.value[offset:offset+length]`` (the token may contain newlines)."""
    before = tok.value[:offset]
    nl = before.count("\n")
    line = tok.line + nl
    col = (tok.column + offset) if nl == 0 else (offset - before.rindex("\n"))
    return A.Span(line, col, line, col + length)


def decode_string(tok: Token) -> str:
    """The value of a STRING token; E006 on an invalid escape. Surrogate pairs combine."""
    body = tok.value[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    pos = 0
    for m in _ESCAPE_RE.finditer(body):
        out.append(body[pos:m.start()])
        pos = m.end()
        esc = m.group(1)
        if len(esc) == 5:
            out.append(chr(int(esc[1:], 16)))
        elif esc in _ESCAPES:
            out.append(_ESCAPES[esc])
        else:
            shown = body[m.start() + 1:m.start() + 6] if esc == "u" else esc
            shown = shown.split("\n")[0] or "\\n"
            raise PQLSyntaxError(
                f"'\\{shown}' is not a valid escape; use \\\" \\' \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX",
                code="E006", span=_offset_span(tok, m.start() + 1, 1 + len(shown)))
    out.append(body[pos:])
    text = "".join(out)
    # Combine escaped surrogate pairs (\ud83d\ude00) into one character, as JSON does.
    return re.sub("[\ud800-\udbff][\udc00-\udfff]",
                  lambda m: m.group().encode("utf-16", "surrogatepass").decode("utf-16"), text)


_DATETIME_RE = re.compile(r"([0-9]{4})[-/.]([0-9]{1,2})[-/.]([0-9]{1,2})(?:[ \t]+([0-9]{2}):([0-9]{2}):([0-9]{2}))?\Z")


def _datetime(tok: Token) -> A.DateTimeLit:
    m = _DATETIME_RE.match(tok.value)
    try:
        if m is None:
            raise ValueError(tok.value)
        value = _dt.datetime(*(int(g) for g in m.groups() if g is not None))
    except ValueError:
        raise _err("E019", f"'{tok.value}' is not a valid date/time (YYYY-MM-DD [HH:MM:SS])", tok) from None
    return A.DateTimeLit(value, span=token_span(tok))


def _decimal(tok: Token) -> A.FloatLit:
    value = float(tok.value)
    if value in (float("inf"), float("-inf")):
        shown = tok.value if len(tok.value) <= 40 else tok.value[:37] + "..."
        raise _err("E011", f"{shown} is out of range (-1.7976931348623157e+308 … 1.7976931348623157e+308)", tok)
    return A.FloatLit(value, span=token_span(tok))


def _neg_inf(tok: Token) -> A.Node:
    raise _err("E013", "-INF can only be a window start, e.g. COUNT(t.*, -INF, 0)", tok)


_SCALARS = {
    "INT": lambda t: A.IntLit(_int_in(t, INT64), span=token_span(t)),
    "DECIMAL": _decimal,
    "STRING": lambda t: A.StrLit(decode_string(t), span=token_span(t)),
    "BOOL": lambda t: A.BoolLit(t.value.lower() == "true", span=token_span(t)),
    "NULL": lambda t: A.NullLit(span=token_span(t)),
    "DATETIME": _datetime,
    "NEG_INF": _neg_inf,
}

# --- operators: token type -> (CmpOp, takes a list, warning) ---------------------------------

_OPS = {
    "EQ": (A.CmpOp.EQ, False, None), "NE": (A.CmpOp.NE, False, None),
    "LT": (A.CmpOp.LT, False, None), "LE": (A.CmpOp.LE, False, None),
    "GT": (A.CmpOp.GT, False, None), "GE": (A.CmpOp.GE, False, None),
    "IS": (A.CmpOp.EQ, False, None), "IS_NOT": (A.CmpOp.NE, False, None),
    "IN": (A.CmpOp.IN, True, None), "NOT_IN": (A.CmpOp.NOT_IN, True, None),
    "IS_IN": (A.CmpOp.IN, True, ("W101", "IS IN is deprecated; write IN")),
    "CONTAINS": (A.CmpOp.CONTAINS, False, None), "NOT_CONTAINS": (A.CmpOp.NOT_CONTAINS, False, None),
    "STARTS_WITH": (A.CmpOp.STARTS_WITH, False, None), "ENDS_WITH": (A.CmpOp.ENDS_WITH, False, None),
}
_ONE_VALUE_OP = {A.CmpOp.IN: "=", A.CmpOp.NOT_IN: "!="}


def _op_text(tok: Token) -> str:
    return " ".join(tok.value.upper().split())


def _operator(op_tok: Token, rhs: A.Node) -> A.CmpOp:
    """The CmpOp of ``op_tok`` applied to ``rhs``; E208 / E209 when list-ness does not match."""
    op, takes_list, warning = _OPS[op_tok.type]
    if takes_list and not isinstance(rhs, A.ArrayLit):
        name = "IN" if op is A.CmpOp.IN else "NOT IN"
        raise _err("E209", f"{name} needs a list of at least two values; for one value use "
                           f"'{_ONE_VALUE_OP[op]} {format_literal(rhs)}'", rhs)
    if not takes_list and isinstance(rhs, A.ArrayLit):
        raise _err("E208", f"'{_op_text(op_tok)}' takes one value; for a list use IN (…)", _span(op_tok, rhs))
    if warning is not None:
        _warn(*warning, op_tok)
    return op


# LIKE pattern shape (starts with %, ends with %) -> operator.
_LIKE_OPS = {(True, True): A.CmpOp.CONTAINS, (False, True): A.CmpOp.STARTS_WITH, (True, False): A.CmpOp.ENDS_WITH}


def _like(left: A.Node, op_tok: Token, pattern_tok: Token) -> A.Comparison:
    p = decode_string(pattern_tok)
    starts, ends = p.startswith("%"), p.endswith("%")
    negated = op_tok.type == "NOT_LIKE"
    if not (starts or ends):
        raise _err("E014", f"LIKE '{p}' needs % at the start and/or end ('{p}%', '%{p}', '%{p}%'); "
                           f"for equality use = '{p}'", pattern_tok)
    if negated and not (starts and ends):
        raise _err("E015", f"NOT LIKE supports only '%x%'; write NOT ({format_node(left)} LIKE '{p}')",
                   pattern_tok)
    inner = p[1 if starts else 0: len(p) - 1 if ends else len(p)]
    if "%" in inner:
        _warn("W111", f"the interior % in LIKE '{p}' was removed", pattern_tok)
    op = A.CmpOp.NOT_CONTAINS if negated else _LIKE_OPS[(starts, ends)]
    right = A.StrLit(p.replace("%", ""), span=token_span(pattern_tok))
    return A.Comparison(left, op, right, span=_span(left, pattern_tok))


class _Ids:
    """Entity ids as written (operator token and right-hand side), before checking."""

    __slots__ = ("op_tok", "rhs", "span")

    def __init__(self, op_tok: Token, rhs: Any) -> None:
        self.op_tok, self.rhs, self.span = op_tok, rhs, _span(op_tok, rhs)


_ID_OPS = {"EQ": A.CmpOp.EQ, "IS": A.CmpOp.EQ, "IN": A.CmpOp.IN, "IS_IN": A.CmpOp.IN}


def _entity_ids(ids: _Ids) -> tuple[A.Node, ...]:
    """The ids after ``FOR t.pk``: ``= v`` or ``IN (…)``, deduplicated in order."""
    if ids.op_tok.type not in _ID_OPS:  # includes LIKE, whose right-hand side is a raw token
        raise _err("E502", f"entity ids take = or IN, not '{_op_text(ids.op_tok)}'; filter with WHERE", ids.op_tok)
    op = _operator(ids.op_tok, ids.rhs)
    values = ids.rhs.values if op is A.CmpOp.IN else (ids.rhs,)
    return tuple(dict.fromkeys(values))


@v_args(inline=True)
class ASTBuilder(Transformer):
    """One method per grammar rule; children arrive as tokens or AST nodes."""

    def query(self, predict, target, problem, entity, assuming_kw, assuming_cond):
        assuming = None
        if assuming_kw is not None:
            assuming = A.Assuming(assuming_cond, span=_span(assuming_kw, assuming_cond))
        return A.Query(target, problem, entity, assuming, span=_span(predict, entity, assuming))

    # problem --------------------------------------------------------------------------------
    def rank(self, rank_kw, top_kw, k_tok):
        k = _int_in(k_tok, INT32)
        if not TOP_RANGE[0] <= k <= TOP_RANGE[1]:
            raise _err("E404", f"TOP {k} is out of range; use 1 <= k <= 1000", _span(top_kw, k_tok))
        return A.Rank(k, span=_span(rank_kw, k_tok))

    def rank_without_top(self, rank_kw, k_tok):
        raise _err("E403", "RANK needs TOP k, e.g. RANK TOP 10", _span(rank_kw, k_tok))

    def classify(self, classify_kw, top_kw, k_tok):
        if top_kw is not None:
            _int_in(k_tok, INT32)
            _warn("W102", f"TOP {k_tok.value} is ignored with CLASSIFY", _span(top_kw, k_tok))
        return A.Classify(span=token_span(classify_kw))

    def bare_top(self, top_kw, k_tok):
        raise _err("E405", f"TOP k requires RANK: write RANK TOP {k_tok.value}", _span(top_kw, k_tok))

    def forecast(self, kw, n_tok, timeframes_kw):
        n = _int_in(n_tok, INT32)
        if not FORECAST_RANGE[0] <= n <= FORECAST_RANGE[1]:
            raise _err("E406", f"FORECAST {n} TIMEFRAMES is out of range (1 … 10000)", _span(kw, timeframes_kw))
        return A.Forecast(n, span=_span(kw, timeframes_kw))

    # entity ---------------------------------------------------------------------------------
    def for_each(self, kw, column, ids, where_kw, cond):
        if ids is not None:
            op = _op_text(ids.op_tok)
            raise _err("E503", f"FOR EACH takes no ids; write FOR {format_node(column)} {op} …", _span(kw, ids))
        return A.EntitySpec(column, cond, None, span=_span(kw, column, cond))

    def for_ids(self, kw, column, ids, where_kw, cond):
        if ids is None:
            key = format_node(column)
            raise _err("E501", f"FOR needs ids: FOR {key} = <id> or IN (<id>, <id>); or use FOR EACH",
                       _span(kw, column))
        return A.EntitySpec(column, cond, _entity_ids(ids), span=_span(kw, column, ids, cond))

    def entity_ids(self, op_tok, rhs):
        return _Ids(op_tok, rhs)

    # conditions -----------------------------------------------------------------------------
    def or_(self, left, kw, right):
        return _nest(A.BoolOp(A.BoolOperator.OR, left, right, span=_span(left, right)), kw, left, right)

    def and_(self, left, kw, right):
        return _nest(A.BoolOp(A.BoolOperator.AND, left, right, span=_span(left, right)), kw, left, right)

    def not_(self, kw, operand):
        return _nest(A.Not(operand, span=_span(kw, operand)), kw, operand)

    def group(self, lpar, cond, rpar):
        return cond

    def comparison(self, left, op_tok, rhs):
        op = _operator(op_tok, rhs)
        return _nest(A.Comparison(left, op, rhs, span=_span(left, rhs)), op_tok, left)

    def like(self, left, op_tok, pattern_tok):
        return _nest(_like(left, op_tok, pattern_tok), op_tok, left)

    # operands -------------------------------------------------------------------------------
    def aggregation(self, agg, lpar, arg, where_kw, cond, comma, window, rpar):
        node = A.Aggregation(A.AggFunc[agg.value.upper()], arg, cond, window, span=_span(agg, rpar))
        return _nest(node, agg, cond)

    def window(self, start_tok, c1, end_tok, c2, unit_tok):
        unit = None
        if unit_tok is not None and unit_tok.type == "UNIT":
            unit = A.TimeUnit.from_word(unit_tok.value)
        unit_word = unit.word if unit is not None else "days"
        for tok in (start_tok, end_tok):
            if tok.type == "DECIMAL":
                raise _err("E010", f"window bound {tok.value} must be a whole number of {unit_word}", tok)
        if end_tok.type == "NEG_INF":
            _neg_inf(end_tok)
        start = None if start_tok.type == "NEG_INF" else _int_in(start_tok, INT32)
        end = _int_in(end_tok, INT32)
        if unit_tok is not None and unit is None:
            dym, _ = did_you_mean(unit_tok.value, UNIT_WORDS)
            raise _err("E008", f"unknown time unit '{unit_tok.value}'{dym}; "
                               "use seconds, minutes, hours, days, weeks or months", unit_tok)
        if start is not None and start >= end:
            raise _err("E012", f"window start {start} must be below end {end}; did you mean ({end}, {start})?",
                       _span(start_tok, end_tok))
        return A.Window(start, end, unit or A.TimeUnit.DAYS, span=_span(start_tok, unit_tok or end_tok))

    def column(self, table, dot, name):
        return A.Column(_name(table), _name(name), span=_span(table, name))

    def wildcard(self, table, dot, star):
        return A.Wildcard(_name(table), span=_span(table, star))

    # literals -------------------------------------------------------------------------------
    def scalar(self, tok):
        return _SCALARS[tok.type](tok)

    def array(self, lpar, values, rpar):
        return A.ArrayLit(tuple(values), span=_span(lpar, rpar))

    def scalars_start(self, first, comma, second):
        return [first, second]

    def scalars_more(self, values, comma, value):
        values.append(value)  # one list per array, grown in place: linear in its length
        return values

    def tuple1(self, lpar, value, rpar):
        raise _err("E009", f"a list needs at least two values; for one value write '= {format_literal(value)}'",
                   _span(lpar, rpar))


def _name(tok: Token) -> str:
    return tok.value[1:-1] if tok.type == "QUOTED_NAME" else tok.value
