"""Stage 3, types (PQL-SPEC §7.3, §7.6, §9.4): aggregation arguments, comparison operands and
constants, and FOR ids, all driven by the tables of ``pql.catalog``."""

from __future__ import annotations

import datetime as _dt

from pql.ast import Aggregation, ArrayLit, Column, Comparison, IntLit, NullLit, StrLit, Wildcard
from pql.catalog import AGGREGATIONS, DTYPE_FAMILY, LIST_OF, LITERAL_FAMILY, OPERATORS, ConstRule, Family, ResultDtype
from pql.graph import Dtype, Stype
from pql.validation.context import Ctx, Site
from pql.formatter import format_literal, format_name, format_node

__all__ = ["check_types"]


# ---------------------------------------------------------------------------------------------
# Aggregation arguments: the first rule that matches reports (spec, facts) -> error.

_ARG_RULES = (
    ("E201", lambda s, f: s.numeric_only and not f["dtype"].is_numeric,
     "{F} needs a numeric column, but '{col}' is {dtype}; try COUNT or COUNT_DISTINCT"),
    ("E202", lambda s, f: s.rejects_key_or_id and (f["pk"] or f["fk"] or f["stype"] is Stype.ID),
     "{F} is not meaningful on key/ID column '{col}'; use COUNT({t}.*, …)"),
    ("E203", lambda s, f: s.rejects_foreign_key and f["fk"],
     "{F} cannot take foreign key '{col}'; predict linked rows with LIST_DISTINCT({col}, …) RANK TOP k"),
    ("E204", lambda s, f: s.rejects_primary_key and f["pk"],
     "LIST_DISTINCT cannot take primary key '{col}'; count rows with COUNT({t}.*, …)"),
)

_RESULT_DTYPE = {
    ResultDtype.INT: lambda d: Dtype.INT,
    ResultDtype.FLOAT: lambda d: Dtype.FLOAT,
    ResultDtype.SAME: lambda d: d,
    ResultDtype.LIST: lambda d: LIST_OF.get(d, Dtype.OTHER),
}


def _unsupported(ctx: Ctx, col: Column) -> None:
    ctx.error("E205", f"'{format_node(col)}' has an unsupported type ({ctx.schemas[id(col)].dtype}) and cannot be used "
                      "in a query", col)


def _aggregation(ctx: Ctx, site: Site) -> None:
    agg: Aggregation = site.node
    spec = AGGREGATIONS[agg.func]
    arg = agg.column
    if isinstance(arg, Wildcard):
        ctx.types[id(agg)] = (_RESULT_DTYPE[spec.result_dtype](Dtype.INT), spec.result_stype or Stype.NUMERICAL)
        return
    schema = ctx.schemas[id(arg)]
    ctx.types[id(arg)] = (schema.dtype, schema.stype)
    if schema.dtype is Dtype.OTHER:
        _unsupported(ctx, arg)
        return
    table = ctx.graph.tables[arg.table]
    facts = {"dtype": schema.dtype, "stype": schema.stype, "pk": table.primary_key == arg.name,
             "fk": ctx.graph.is_foreign_key(arg.table, arg.name)}
    fields = {"F": agg.func.value, "col": format_node(arg), "t": format_name(arg.table, table=True),
              "dtype": schema.dtype, "stype": schema.stype}
    for code, applies, template in _ARG_RULES:
        if applies(spec, facts):
            ctx.error(code, template.format(**fields), arg)
            return
    warning = spec.stype_warning
    if warning is not None and (schema.stype in warning.stypes) == warning.when_in:
        ctx.warn(warning.code, warning.message.format(**fields), arg)
    ctx.types[id(agg)] = (_RESULT_DTYPE[spec.result_dtype](schema.dtype), spec.result_stype or schema.stype)


# ---------------------------------------------------------------------------------------------
# Comparisons


def _kind(node) -> tuple[Family, str]:
    return LITERAL_FAMILY[type(node).__name__]


def _unquotes_to(value: str, family: Family) -> bool:
    """True when the quoted text would be a valid constant of ``family`` without its quotes."""
    text_ = value.strip()
    if family is Family.BOOL:
        return text_ in ("true", "True", "TRUE", "false", "False", "FALSE")
    try:
        float(text_)
    except ValueError:
        return False
    return True


def _mismatch_hints(family: Family, const) -> list[str]:
    if isinstance(const, StrLit) and family is Family.TIMESTAMP:
        return [f"write dates unquoted: {_as_date(const.value) or '2024-01-31'}"]
    if isinstance(const, StrLit) and family in (Family.NUMERIC, Family.BOOL) and _unquotes_to(const.value, family):
        return ["remove the quotes"]
    if family is Family.STRING and not isinstance(const, (StrLit, NullLit)):
        return ["did you forget quotes?"]
    return []


def _as_date(value: str) -> str | None:
    try:
        parsed = _dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return value.strip() if parsed.tzinfo is None and "T" not in value else None


def _mismatch(ctx: Ctx, lhs: str, dtype: Dtype, family: Family, const) -> None:
    kind = _kind(const)[1]
    ctx.error("E205", f"'{lhs}' is {dtype} but {format_literal(const)} is {kind}", const,
              _mismatch_hints(family, const))


_OPERAND_MESSAGES = {
    "E207": "'{op}' is undefined for boolean '{lhs}'; use = TRUE or = FALSE",
    "E211": "{op} works on strings, but '{lhs}' is {dtype}",
    "E213": "'{lhs}' is a list; use CONTAINS, NOT CONTAINS or IS [NOT] NULL",
    "E205": "'{lhs}' is {dtype} and cannot be compared with '{op}'",
}
_NULL_MESSAGES = {
    "E206": "'{op}' cannot compare with NULL; use IS NULL or IS NOT NULL",
    "E212": "{op} needs a quoted string, got NULL",
    "E205": "'{lhs}' cannot be compared with NULL using '{op}'",
}
_WARNINGS = {
    "W105": "'{op}' on {stype} column '{lhs}' compares values by code point; their order may mean nothing",
    "W106": "{op} on ID column '{lhs}': IDs are identifiers, not text",
}


def _const_same(ctx: Ctx, cmp: Comparison, lhs: str, dtype: Dtype, family: Family) -> None:
    if _kind(cmp.right)[0] is not family:
        _mismatch(ctx, lhs, dtype, family, cmp.right)


def _const_array(ctx: Ctx, cmp: Comparison, lhs: str, dtype: Dtype, family: Family) -> None:
    for value in cmp.right.values:
        vfam, kind = _kind(value)
        if vfam is Family.NULL:
            ctx.error("E210", f"list value NULL is NULL, expected {dtype}", value, [f"use OR {lhs} IS NULL"])
        elif vfam is not family:
            ctx.error("E210", f"list value {format_literal(value)} is {kind}, expected {dtype}", value,
                      _mismatch_hints(family, value))


def _const_string(ctx: Ctx, cmp: Comparison, lhs: str, dtype: Dtype, family: Family) -> None:
    if not isinstance(cmp.right, StrLit):
        ctx.error("E212", f"{cmp.op.value} needs a quoted string, got {format_literal(cmp.right)}", cmp.right)


def _const_element(ctx: Ctx, cmp: Comparison, lhs: str, dtype: Dtype, family: Family) -> None:
    if family is not Family.LIST or dtype.element is Dtype.STRING:
        _const_string(ctx, cmp, lhs, dtype, family)
    else:
        _const_same(ctx, cmp, lhs, dtype, DTYPE_FAMILY[dtype.element])


_CONST_CHECKS = {
    ConstRule.SAME_FAMILY: _const_same,
    ConstRule.ARRAY_SAME_FAMILY: _const_array,
    ConstRule.STRING: _const_string,
    ConstRule.STRING_OR_ELEMENT: _const_element,
}


def _comparison(ctx: Ctx, cmp: Comparison) -> None:
    bound = ctx.types.get(id(cmp.left))
    if bound is None:
        return  # the operand already has an error
    dtype, stype = bound
    family = DTYPE_FAMILY[dtype]
    if family is Family.UNSUPPORTED:
        return
    spec = OPERATORS[cmp.op]
    lhs = format_node(cmp.left)
    wants_array = spec.const is ConstRule.ARRAY_SAME_FAMILY
    if wants_array != isinstance(cmp.right, ArrayLit):  # only hand-built ASTs get here; the parser rejects it
        if wants_array:
            ctx.error("E209", f"IN needs a list of at least two values; for one value use '= "
                              f"{format_literal(cmp.right)}'", cmp.right)
        else:
            ctx.error("E208", f"'{cmp.op.value}' takes one value; for a list use IN (…)", cmp.right)
        return
    is_null = isinstance(cmp.right, NullLit)
    fields = {"op": cmp.op.value, "lhs": lhs, "dtype": dtype, "stype": stype}
    if family not in spec.operands and not (family is Family.LIST and spec.list_null_ok and is_null):
        code = spec.operand_errors.get(family, spec.default_operand_error)
        ctx.error(code, _OPERAND_MESSAGES[code].format(**fields), cmp.left if code != "E207" else cmp)
        return
    if is_null:
        if not spec.null_ok:
            ctx.error(spec.null_error, _NULL_MESSAGES[spec.null_error].format(**fields), cmp.right)
        return
    _CONST_CHECKS[spec.const](ctx, cmp, lhs, dtype, family)
    if spec.warn_code and stype in spec.warn_stypes and not (spec.warn_non_list_only and family is Family.LIST):
        ctx.warn(spec.warn_code, _WARNINGS[spec.warn_code].format(**fields), cmp.left)


# ---------------------------------------------------------------------------------------------
# FOR ids (X1)

_ID_LITERALS = {Dtype.INT: (IntLit,), Dtype.STRING: (StrLit,)}


def _ids(ctx: Ctx) -> None:
    entity = ctx.query.entity
    if entity.ids is None:
        return
    pk = ctx.schemas[id(entity.key)]
    family = DTYPE_FAMILY[pk.dtype]
    for value in entity.ids:
        allowed = _ID_LITERALS.get(pk.dtype)
        ok = isinstance(value, allowed) if allowed else _kind(value)[0] is family
        if not ok:
            _mismatch(ctx, format_node(entity.key), pk.dtype, family, value)


def check_types(ctx: Ctx) -> None:
    key = ctx.query.entity.key
    ctx.types[id(key)] = (ctx.schemas[id(key)].dtype, ctx.schemas[id(key)].stype)
    for site in ctx.sites.columns:
        col = site.node
        schema = ctx.schemas[id(col)]
        ctx.types[id(col)] = (schema.dtype, schema.stype)
        if schema.dtype is Dtype.OTHER and not ctx.is_target_root(col):
            _unsupported(ctx, col)
    for site in ctx.sites.aggs:
        _aggregation(ctx, site)
    for site in ctx.sites.cmps:
        _comparison(ctx, site.node)
    _ids(ctx)
