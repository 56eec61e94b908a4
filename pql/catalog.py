"""Tables of data for aggregations and comparison operators (PQL-SPEC §7.3, §7.6, §9.4).

One entry per aggregation and per operator, keyed by the AST enums. The validator reads these
tables to type-check queries; the compiler adds its SQL builders keyed by the same enums. Nothing
here executes a rule: the entries only *describe* them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pql.ast import AggFunc, CmpOp
from pql.graph import Dtype, Stype

__all__ = [
    "Family", "DTYPE_FAMILY", "LITERAL_FAMILY", "ResultDtype", "StypeWarning", "AggSpec", "AGGREGATIONS",
    "ConstRule", "OpSpec", "OPERATORS", "LIST_OF",
]


class Family(enum.Enum):
    """Comparison families (§7.6): int and float mix; everything else compares only with itself."""

    NUMERIC = "numeric"
    STRING = "string"
    BOOL = "bool"
    TIMESTAMP = "timestamp"
    LIST = "list"
    NULL = "null"
    UNSUPPORTED = "unsupported"


DTYPE_FAMILY: dict[Dtype, Family] = {
    Dtype.INT: Family.NUMERIC,
    Dtype.FLOAT: Family.NUMERIC,
    Dtype.BOOL: Family.BOOL,
    Dtype.STRING: Family.STRING,
    Dtype.TIMESTAMP: Family.TIMESTAMP,
    Dtype.LIST_STRING: Family.LIST,
    Dtype.LIST_INT: Family.LIST,
    Dtype.OTHER: Family.UNSUPPORTED,
}

# Literal node class name -> (family, kind word used in messages).
LITERAL_FAMILY: dict[str, tuple[Family, str]] = {
    "IntLit": (Family.NUMERIC, "int"),
    "FloatLit": (Family.NUMERIC, "float"),
    "StrLit": (Family.STRING, "string"),
    "BoolLit": (Family.BOOL, "bool"),
    "DateTimeLit": (Family.TIMESTAMP, "timestamp"),
    "NullLit": (Family.NULL, "NULL"),
}

# Element dtype -> list dtype (LIST_DISTINCT results). Dtypes without a list form map to OTHER.
LIST_OF: dict[Dtype, Dtype] = {
    Dtype.STRING: Dtype.LIST_STRING,
    Dtype.INT: Dtype.LIST_INT,
    Dtype.LIST_STRING: Dtype.LIST_STRING,  # list inputs are flattened
    Dtype.LIST_INT: Dtype.LIST_INT,
}


# ---------------------------------------------------------------------------------------------
# Aggregations (§7.3)


class ResultDtype(enum.Enum):
    """How an aggregation's result dtype follows from its input dtype."""

    INT = "int"  # always int (counts)
    FLOAT = "float"  # always float (AVG)
    SAME = "same"  # the input's dtype
    LIST = "list"  # list of the input's dtype (LIST_OF)


@dataclass(frozen=True)
class StypeWarning:
    """Warn with ``code`` when the input stype is (``when_in``) or is not (not ``when_in``) in ``stypes``."""

    code: str
    stypes: frozenset[Stype]
    when_in: bool
    message: str  # format fields: {F}, {col}, {stype}


@dataclass(frozen=True)
class AggSpec:
    func: AggFunc
    accepts_wildcard: bool = False  # `t.*` (E103 otherwise)
    numeric_only: bool = False  # E201 on a non-numeric dtype (bool included)
    rejects_key_or_id: bool = False  # E202: primary/foreign keys and ID stypes
    rejects_foreign_key: bool = False  # E203
    rejects_primary_key: bool = False  # E204
    result_dtype: ResultDtype = ResultDtype.SAME
    result_stype: Stype | None = None  # None: the input's stype
    empty_value: int | None = None  # value on an empty input; None = undefined (drops the example)
    forecastable: bool = False  # allowed with FORECAST n TIMEFRAMES (E409)
    stype_warning: StypeWarning | None = None

    @property
    def needs_input(self) -> bool:
        """True when the aggregation is undefined on an empty input (§7.4)."""
        return self.empty_value is None


_W107 = StypeWarning(
    "W107", frozenset({Stype.CATEGORICAL, Stype.ID, Stype.MULTICATEGORICAL}), True,
    "{F} on {stype} column '{col}' orders values by code point / false < true",
)
_W108 = StypeWarning(
    "W108", frozenset({Stype.NUMERICAL}), False,
    "{F} on '{col}', whose semantic type is {stype}, not numerical",
)
_W109 = StypeWarning(
    "W109", frozenset({Stype.CATEGORICAL, Stype.ID, Stype.MULTICATEGORICAL}), False,
    "LIST_DISTINCT on {stype} column '{col}'; expected a categorical, ID or multicategorical column",
)

AGGREGATIONS: dict[AggFunc, AggSpec] = {
    spec.func: spec
    for spec in (
        AggSpec(AggFunc.COUNT, accepts_wildcard=True, result_dtype=ResultDtype.INT,
                result_stype=Stype.NUMERICAL, empty_value=0, forecastable=True),
        AggSpec(AggFunc.COUNT_DISTINCT, rejects_key_or_id=True, result_dtype=ResultDtype.INT,
                result_stype=Stype.NUMERICAL, empty_value=0, forecastable=True),
        AggSpec(AggFunc.SUM, numeric_only=True, rejects_key_or_id=True, result_dtype=ResultDtype.SAME,
                result_stype=Stype.NUMERICAL, empty_value=0, forecastable=True, stype_warning=_W108),
        AggSpec(AggFunc.AVG, numeric_only=True, rejects_key_or_id=True, result_dtype=ResultDtype.FLOAT,
                result_stype=Stype.NUMERICAL, stype_warning=_W108),
        AggSpec(AggFunc.MIN, stype_warning=_W107),
        AggSpec(AggFunc.MAX, stype_warning=_W107),
        AggSpec(AggFunc.FIRST, rejects_foreign_key=True),
        AggSpec(AggFunc.LAST, rejects_foreign_key=True),
        AggSpec(AggFunc.LIST_DISTINCT, rejects_primary_key=True, result_dtype=ResultDtype.LIST,
                result_stype=Stype.MULTICATEGORICAL, stype_warning=_W109),
    )
}


# ---------------------------------------------------------------------------------------------
# Operators (§7.6)


class ConstRule(enum.Enum):
    """What the right-hand constant of an operator must be."""

    SAME_FAMILY = "same"  # a scalar of the operand's family (E205)
    ARRAY_SAME_FAMILY = "array"  # an array whose elements are of the operand's family (E210)
    STRING = "string"  # a quoted string (E212)
    STRING_OR_ELEMENT = "element"  # string operand: a string; list operand: a scalar of its element type


@dataclass(frozen=True)
class OpSpec:
    op: CmpOp
    operands: frozenset[Family]  # operand families accepted
    operand_errors: dict[Family, str]  # rejected family -> code (others: default_operand_error)
    default_operand_error: str
    const: ConstRule
    null_ok: bool = False  # NULL constant allowed (= / != only; ≡ IS [NOT] NULL)
    null_error: str = "E205"  # code when NULL is given but not allowed
    list_null_ok: bool = False  # a list operand is allowed when compared with NULL (IS [NOT] NULL)
    warn_stypes: frozenset[Stype] = frozenset()  # operand stypes that give `warn_code`
    warn_code: str | None = None
    warn_non_list_only: bool = False  # the warning applies to scalar (non-list) operands only


_SCALARS = frozenset({Family.NUMERIC, Family.STRING, Family.BOOL, Family.TIMESTAMP})
_ORDERED = frozenset({Family.NUMERIC, Family.STRING, Family.TIMESTAMP})
_ID_CAT = frozenset({Stype.CATEGORICAL, Stype.ID})


def _eq(op: CmpOp) -> OpSpec:
    return OpSpec(op, _SCALARS, {Family.LIST: "E213"}, "E205", ConstRule.SAME_FAMILY, null_ok=True, list_null_ok=True)


def _order(op: CmpOp) -> OpSpec:
    return OpSpec(op, _ORDERED, {Family.BOOL: "E207", Family.LIST: "E213"}, "E205", ConstRule.SAME_FAMILY,
                  null_error="E206", warn_stypes=_ID_CAT, warn_code="W105")


def _member(op: CmpOp) -> OpSpec:
    return OpSpec(op, _SCALARS, {Family.LIST: "E213"}, "E205", ConstRule.ARRAY_SAME_FAMILY, null_error="E210")


def _contains(op: CmpOp) -> OpSpec:
    return OpSpec(op, frozenset({Family.STRING, Family.LIST}), {}, "E211", ConstRule.STRING_OR_ELEMENT,
                  null_error="E212", warn_stypes=frozenset({Stype.ID}), warn_code="W106", warn_non_list_only=True)


def _affix(op: CmpOp) -> OpSpec:
    return OpSpec(op, frozenset({Family.STRING}), {Family.LIST: "E213"}, "E211", ConstRule.STRING,
                  null_error="E212", warn_stypes=frozenset({Stype.ID}), warn_code="W106")


OPERATORS: dict[CmpOp, OpSpec] = {
    spec.op: spec
    for spec in (
        _eq(CmpOp.EQ), _eq(CmpOp.NE),
        _order(CmpOp.LT), _order(CmpOp.LE), _order(CmpOp.GT), _order(CmpOp.GE),
        _member(CmpOp.IN), _member(CmpOp.NOT_IN),
        _contains(CmpOp.CONTAINS), _contains(CmpOp.NOT_CONTAINS),
        _affix(CmpOp.STARTS_WITH), _affix(CmpOp.ENDS_WITH),
    )
}
