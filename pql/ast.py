"""The PQL abstract syntax tree (PQL-SPEC §5).

Nodes are frozen, slotted dataclasses. Every node carries a ``span`` (1-based, end exclusive)
that is excluded from equality and hashing, so ``parse(format(q)) == q`` compares structure only.
No lark object survives past the AST builder. ``to_dict`` / ``from_dict`` round-trip through
plain JSON-able values.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
from dataclasses import dataclass, field
from typing import Any, Union

__all__ = [
    "Span", "Node", "TimeUnit", "AggFunc", "CmpOp", "BoolOperator", "TaskType", "QueryKind",
    "IntLit", "FloatLit", "StrLit", "BoolLit", "NullLit", "DateTimeLit", "ArrayLit",
    "Column", "Wildcard", "Window", "Aggregation", "Comparison", "BoolOp", "Not",
    "Rank", "Classify", "Forecast", "EntitySpec", "Assuming", "Query",
    "Literal", "Scalar", "Operand", "Condition", "Target", "ProblemSpec",
    "walk", "to_dict", "from_dict",
]


@dataclass(frozen=True, slots=True)
class Span:
    line: int
    column: int
    end_line: int
    end_column: int

    def to_list(self) -> list[int]:
        return [self.line, self.column, self.end_line, self.end_column]


def _span() -> Any:
    return field(default=None, compare=False, hash=False, repr=False, kw_only=True)


# ---------------------------------------------------------------------------------------------
# Enums. Units, aggregations and operators are tables of data: each member carries what the
# later stages need, so dispatch is by lookup rather than if/elif chains.


class TimeUnit(enum.Enum):
    SECONDS = ("seconds", 1)
    MINUTES = ("minutes", 60)
    HOURS = ("hours", 3600)
    DAYS = ("days", 86400)
    WEEKS = ("weeks", 7 * 86400)
    MONTHS = ("months", None)  # calendar months; see approx_seconds

    def __init__(self, word: str, seconds: int | None) -> None:
        self.word = word
        self.exact_seconds = seconds

    @property
    def approx_seconds(self) -> int:
        """Seconds per unit, months counting as 30 days (spec §10.1, W110)."""
        return self.exact_seconds if self.exact_seconds is not None else 30 * 86400

    @classmethod
    def from_word(cls, word: str) -> "TimeUnit":
        return _UNIT_BY_WORD[word.lower()]


_UNIT_BY_WORD = {u.word: u for u in TimeUnit}


class AggFunc(enum.Enum):
    SUM = "SUM"
    AVG = "AVG"
    MIN = "MIN"
    MAX = "MAX"
    COUNT = "COUNT"
    COUNT_DISTINCT = "COUNT_DISTINCT"
    FIRST = "FIRST"
    LAST = "LAST"
    LIST_DISTINCT = "LIST_DISTINCT"


class CmpOp(enum.Enum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    IN = "IN"
    NOT_IN = "NOT IN"
    CONTAINS = "CONTAINS"
    NOT_CONTAINS = "NOT CONTAINS"
    STARTS_WITH = "STARTS WITH"
    ENDS_WITH = "ENDS WITH"

    @property
    def is_ordering(self) -> bool:
        return self in (CmpOp.LT, CmpOp.LE, CmpOp.GT, CmpOp.GE)

    @property
    def is_membership(self) -> bool:
        return self in (CmpOp.IN, CmpOp.NOT_IN)

    @property
    def is_string_op(self) -> bool:
        return self in (CmpOp.CONTAINS, CmpOp.NOT_CONTAINS, CmpOp.STARTS_WITH, CmpOp.ENDS_WITH)


class BoolOperator(enum.Enum):
    AND = "AND"
    OR = "OR"


class TaskType(enum.Enum):
    BINARY_CLASSIFICATION = "binary_classification"
    MULTICLASS_CLASSIFICATION = "multiclass_classification"
    MULTILABEL_CLASSIFICATION = "multilabel_classification"
    MULTILABEL_RANKING = "multilabel_ranking"
    REGRESSION = "regression"
    FORECASTING = "forecasting"
    TEMPORAL_LINK_PREDICTION = "temporal_link_prediction"
    STATIC_LINK_PREDICTION = "static_link_prediction"

    def __str__(self) -> str:
        return self.value

    @property
    def is_link_prediction(self) -> bool:
        return self in (TaskType.TEMPORAL_LINK_PREDICTION, TaskType.STATIC_LINK_PREDICTION)

    @property
    def is_ranking(self) -> bool:
        return self.is_link_prediction or self in (TaskType.MULTILABEL_RANKING,)


class QueryKind(enum.Enum):
    TEMPORAL = "temporal"
    STATIC = "static"

    def __str__(self) -> str:
        return self.value


# ---------------------------------------------------------------------------------------------
# Nodes


class Node:
    """Marker base class of every AST node (no fields, so slots stay clean)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class IntLit(Node):
    value: int
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class FloatLit(Node):
    value: float
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class StrLit(Node):
    value: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class BoolLit(Node):
    value: bool
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class NullLit(Node):
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class DateTimeLit(Node):
    value: _dt.datetime  # naive, read as UTC
    span: Span | None = _span()


Scalar = Union[IntLit, FloatLit, StrLit, BoolLit, NullLit, DateTimeLit]


@dataclass(frozen=True, slots=True)
class ArrayLit(Node):
    values: tuple[Scalar, ...]
    span: Span | None = _span()


Literal = Union[Scalar, ArrayLit]


@dataclass(frozen=True, slots=True)
class Column(Node):
    table: str
    name: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Wildcard(Node):
    table: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Window(Node):
    start: int | None  # None means -INF
    end: int
    unit: TimeUnit = TimeUnit.DAYS
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Aggregation(Node):
    func: AggFunc
    column: Union[Column, Wildcard]
    filter: "Condition | None" = None
    window: Window | None = None
    span: Span | None = _span()

    @property
    def table(self) -> str:
        """The aggregated table."""
        return self.column.table


Operand = Union[Column, Aggregation]


@dataclass(frozen=True, slots=True)
class Comparison(Node):
    left: Operand
    op: CmpOp
    right: Literal
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class BoolOp(Node):
    op: BoolOperator
    left: "Condition"
    right: "Condition"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: "Condition"
    span: Span | None = _span()


Condition = Union[Comparison, BoolOp, Not]
Target = Union[Column, Aggregation, Comparison, BoolOp, Not]


@dataclass(frozen=True, slots=True)
class Rank(Node):
    k: int
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Classify(Node):
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Forecast(Node):
    n: int
    span: Span | None = _span()


ProblemSpec = Union[Rank, Classify, Forecast]


@dataclass(frozen=True, slots=True)
class EntitySpec(Node):
    key: Column
    filter: Condition | None = None
    ids: tuple[Scalar, ...] | None = None  # None for FOR EACH
    span: Span | None = _span()

    @property
    def table(self) -> str:
        return self.key.table

    @property
    def pk(self) -> str:
        return self.key.name


@dataclass(frozen=True, slots=True)
class Assuming(Node):
    condition: Condition
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Query(Node):
    target: Target
    problem: ProblemSpec | None
    entity: EntitySpec
    assuming: Assuming | None = None
    span: Span | None = _span()


CONDITION_TYPES = (Comparison, BoolOp, Not)
SCALAR_TYPES = (IntLit, FloatLit, StrLit, BoolLit, NullLit, DateTimeLit)


def walk(node: Any):
    """Yield ``node`` and every node below it, depth first, parents before children."""
    if isinstance(node, Node):
        yield node
        for f in dataclasses.fields(node):
            if f.name == "span":
                continue
            yield from walk(getattr(node, f.name))
    elif isinstance(node, tuple):
        for item in node:
            yield from walk(item)


# ---------------------------------------------------------------------------------------------
# JSON form: {"node": "Comparison", ..., "span": [l, c, el, ec]}

_NODE_CLASSES = {
    cls.__name__: cls
    for cls in (IntLit, FloatLit, StrLit, BoolLit, NullLit, DateTimeLit, ArrayLit, Column, Wildcard, Window,
                Aggregation, Comparison, BoolOp, Not, Rank, Classify, Forecast, EntitySpec, Assuming, Query)
}

def _encode(value: Any) -> Any:
    if isinstance(value, Node):
        return to_dict(value)
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, _dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return repr(value)
    return value


def to_dict(node: Node) -> dict[str, Any]:
    d: dict[str, Any] = {"node": type(node).__name__}
    for f in dataclasses.fields(node):
        if f.name == "span":
            continue
        d[f.name] = _encode(getattr(node, f.name))
    span = getattr(node, "span", None)
    d["span"] = span.to_list() if span is not None else None
    return d


def _decode_field(cls: type, name: str, value: Any) -> Any:
    if isinstance(value, dict) and "node" in value:
        return from_dict(value)
    if isinstance(value, list):
        return tuple(_decode_field(cls, name, v) for v in value)
    if value is None:
        return None
    if name == "unit":
        return TimeUnit[value]
    if name == "func":
        return AggFunc[value]
    if name == "op":
        return BoolOperator[value] if cls is BoolOp else CmpOp[value]
    if cls is DateTimeLit and name == "value":
        return _dt.datetime.fromisoformat(value)
    if cls is FloatLit and name == "value":
        return float(value)
    return value


def from_dict(d: dict[str, Any]) -> Any:
    cls = _NODE_CLASSES[d["node"]]
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name == "span":
            continue
        if f.name in d:
            kwargs[f.name] = _decode_field(cls, f.name, d[f.name])
    span = d.get("span")
    return cls(**kwargs, span=Span(*span) if span else None)
