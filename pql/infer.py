"""Inference (PQL-SPEC §6.3, §6.5): semantic types from statistics, and a whole graph from a directory.

Statistics are DuckDB aggregates over the first 100 000 non-null values of each column, so
inference is deterministic and quick on large files; key uniqueness is one aggregate per table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import duckdb
from sqlglot import exp

from pql.datasource import FORMAT_BY_SUFFIX, SAMPLE_SIZE, RawColumn, col, lit, run
from pql.errors import PQLDataError, PQLWarning
from pql.graph import Dtype, Graph, Stype

__all__ = [
    "ColumnStats", "STYPE_DTYPES", "is_id_name", "infer_stype", "column_stats", "singular",
    "pk_candidates", "unique_columns", "infer_primary_key", "infer_time_column", "infer_edges",
    "graph_from_directory",
]

# §6.3 rule 1: the dtypes each semantic type may be given (timestamp on a string means "parse it").
STYPE_DTYPES: dict[Stype, frozenset[Dtype]] = {
    Stype.NUMERICAL: frozenset({Dtype.INT, Dtype.FLOAT}),
    Stype.CATEGORICAL: frozenset({Dtype.INT, Dtype.STRING, Dtype.BOOL}),
    Stype.MULTICATEGORICAL: frozenset({Dtype.LIST_STRING, Dtype.LIST_INT, Dtype.STRING}),
    Stype.ID: frozenset({Dtype.INT, Dtype.STRING}),
    Stype.TEXT: frozenset({Dtype.STRING}),
    Stype.TIMESTAMP: frozenset({Dtype.TIMESTAMP, Dtype.STRING}),
}

# Thresholds of §6.3 rules 4 and 5.
CATEGORICAL_INT_MAX_DISTINCT = 10
CATEGORICAL_INT_MIN_ROWS = 100
TEXT_MIN_MEAN_LENGTH = 40
CATEGORICAL_STRING_MAX_DISTINCT = 1000
TEXT_MIN_SPACE_SHARE = 0.5


@dataclass(frozen=True)
class ColumnStats:
    """Over the first 100 000 non-null values: how many, how many distinct, mean length, share with a space."""

    count: int
    distinct: int
    mean_length: float | None = None
    space_share: float | None = None


_ID_NAME_RE = re.compile(r"(?i:^id$|_id$)|[a-z](Id|ID)$")


def is_id_name(name: str) -> bool:
    """§6.3 rule 3: ``id``, ``*_id`` (any case), or ``…Id`` / ``…ID`` after a lower-case letter."""
    return _ID_NAME_RE.search(name) is not None


# -- §6.3 rules, in order; each returns a stype or None to pass to the next --------------------
_FIXED = {Dtype.BOOL: Stype.CATEGORICAL, Dtype.TIMESTAMP: Stype.TIMESTAMP, Dtype.LIST_STRING: Stype.MULTICATEGORICAL,
          Dtype.LIST_INT: Stype.MULTICATEGORICAL, Dtype.OTHER: Stype.UNSUPPORTED}


def _rule_keys(name: str, dtype: Dtype, is_key: bool, stats: ColumnStats | None) -> Stype | None:
    return Stype.ID if is_key else _FIXED.get(dtype)


def _rule_id_name(name: str, dtype: Dtype, is_key: bool, stats: ColumnStats | None) -> Stype | None:
    return Stype.ID if dtype in (Dtype.INT, Dtype.STRING) and is_id_name(name) else None


def _rule_numbers(name: str, dtype: Dtype, is_key: bool, stats: ColumnStats | None) -> Stype | None:
    if dtype is Dtype.FLOAT:
        return Stype.NUMERICAL
    if dtype is Dtype.INT:
        few = stats is not None and stats.distinct <= CATEGORICAL_INT_MAX_DISTINCT
        enough = stats is not None and stats.count >= CATEGORICAL_INT_MIN_ROWS
        return Stype.CATEGORICAL if few and enough else Stype.NUMERICAL
    return None


def _rule_strings(name: str, dtype: Dtype, is_key: bool, stats: ColumnStats | None) -> Stype | None:
    if dtype is not Dtype.STRING:
        return None
    s = stats or ColumnStats(0, 0)
    if s.mean_length is not None and s.mean_length >= TEXT_MIN_MEAN_LENGTH:
        return Stype.TEXT
    if s.distinct <= CATEGORICAL_STRING_MAX_DISTINCT:
        return Stype.CATEGORICAL
    if s.space_share is not None and s.space_share >= TEXT_MIN_SPACE_SHARE:
        return Stype.TEXT
    return Stype.ID


_RULES: list[Callable[[str, Dtype, bool, ColumnStats | None], Stype | None]] = [
    _rule_keys, _rule_id_name, _rule_numbers, _rule_strings,
]


def infer_stype(name: str, dtype: Dtype, *, is_key: bool = False, stats: ColumnStats | None = None) -> Stype:
    """§6.3 rules 2-5 (rule 1, the override, is applied by the caller)."""
    for rule in _RULES:
        stype = rule(name, dtype, is_key, stats)
        if stype is not None:
            return stype
    return Stype.UNSUPPORTED


def needs_stats(name: str, dtype: Dtype, is_key: bool) -> bool:
    """Only int and string columns that no earlier rule decides need statistics."""
    return _rule_keys(name, dtype, is_key, None) is None and _rule_id_name(name, dtype, is_key, None) is None \
        and dtype in (Dtype.INT, Dtype.STRING)


def column_stats(con: duckdb.DuckDBPyConnection, source: exp.Expression,
                 columns: Iterable[RawColumn]) -> dict[str, ColumnStats]:
    """One query: per column, statistics over its first 100 000 non-null values (a ``UNION ALL``
    of per-column samples, which DuckDB runs faster than one aggregate of several DISTINCTs)."""
    columns = list(columns)
    if not columns:
        return {}
    query: exp.Query | None = None
    for i, raw in enumerate(columns):
        inner = (exp.select(exp.alias_(_value(raw), "v")).from_(source.copy())
                 .where(exp.Not(this=exp.Is(this=col(raw.name), expression=exp.Null()))).limit(SAMPLE_SIZE))
        part = exp.select(exp.Literal.number(i), *_stat_items(raw, exp.column("v"))).from_(inner.subquery("s"))
        # built in place: exp.union would copy the growing query once per column
        query = part if query is None else exp.Union(this=query, expression=part, distinct=False)
    out = {}
    for i, n, d, length, spaces in run(con, query):
        out[columns[int(i)].name] = ColumnStats(int(n), int(d), length, spaces)
    return out


def _value(raw: RawColumn) -> exp.Expression:
    """The column as statistics see it: text for string columns."""
    return exp.cast(col(raw.name), exp.DataType.build("VARCHAR")) if raw.dtype is Dtype.STRING else col(raw.name)


def _stat_items(raw: RawColumn, v: exp.Expression) -> list[exp.Expression]:
    """Count, distinct count, mean length and share containing a space of the (non-null) sample."""
    count = exp.Count(this=exp.Star())
    distinct = exp.Count(this=exp.Distinct(expressions=[v.copy()]))
    if raw.dtype is not Dtype.STRING:
        return [count, distinct, exp.cast(exp.Null(), "DOUBLE"), exp.cast(exp.Null(), "DOUBLE")]
    length = exp.func("avg", exp.Length(this=v.copy()))
    spaces = exp.func("avg", exp.Case(ifs=[exp.If(this=exp.func("contains", v.copy(), lit(" ")),
                                                  true=exp.Literal.number(1))], default=exp.Literal.number(0)))
    return [count, distinct, length, spaces]


# -- §6.5 directory inference ------------------------------------------------------------------
def singular(stem: str) -> str:
    """``ies`` -> ``y``; drop ``es`` after s, x, ch or sh; else drop one trailing ``s``."""
    lower = stem.lower()
    if lower.endswith("ies"):
        return stem[:-3] + ("Y" if stem[-3:].isupper() else "y")
    if lower.endswith("es") and lower[:-2].endswith(("s", "x", "ch", "sh")):
        return stem[:-2]
    if lower.endswith("s"):
        return stem[:-1]
    return stem


def pk_candidates(stem: str) -> list[str]:
    """``<singular>_id``, ``<stem>_id``, ``id``, without repeats, in that order."""
    return list(dict.fromkeys([f"{singular(stem)}_id", f"{stem}_id", "id"]))


def unique_columns(con: duckdb.DuckDBPyConnection, source: exp.Expression, names: list[str]) -> dict[str, bool]:
    """Whether each column is unique and non-null over the whole table (one aggregate query)."""
    if not names:
        return {}
    items: list[exp.Expression] = [exp.Count(this=exp.Star())]
    for n in names:
        items += [exp.Count(this=col(n)), exp.Count(this=exp.Distinct(expressions=[col(n)]))]
    row = run(con, exp.select(*items).from_(source.copy()))[0]
    total = row[0]
    return {n: row[1 + 2 * i] == total and row[2 + 2 * i] == total for i, n in enumerate(names)}


def infer_primary_key(con: duckdb.DuckDBPyConnection, table: str, source: exp.Expression,
                      raws: list[RawColumn]) -> tuple[str | None, list[PQLWarning]]:
    present = [c for c in pk_candidates(table) if any(r.name == c for r in raws)]
    unique = unique_columns(con, source, present)
    chosen = next((c for c in present if unique[c]), None)
    if chosen is None and present:
        return None, [PQLWarning(
            "W704", f"table '{table}': candidate primary key '{present[0]}' is not unique and non-null; "
                    "the table gets no primary key", table=table, column=present[0],
            hints=["declare primary_key in graph.toml if another column is the key"])]
    return chosen, []


def infer_time_column(table: str, raws: list[RawColumn]) -> tuple[str | None, list[PQLWarning]]:
    stamps = [r.name for r in raws if r.dtype is Dtype.TIMESTAMP]
    if len(stamps) > 1:
        return None, [PQLWarning(
            "W703", f"table '{table}' has several timestamp columns ({', '.join(stamps)}), so no time column "
                    "was chosen", table=table, hints=["set time_column in graph.toml"])]
    return (stamps[0] if stamps else None), []


def infer_edges(columns: dict[str, dict[str, Dtype]], pks: dict[str, str | None]) -> tuple[list, list[PQLWarning]]:
    """FKs: a column named like exactly one *other* table's primary key (never ``id``), same dtype."""
    from pql.graph import Edge

    owners: dict[str, list[str]] = {}
    for t, pk in pks.items():
        if pk is not None and pk.lower() != "id":
            owners.setdefault(pk, []).append(t)
    edges, warnings = [], []
    for t, cols in columns.items():
        for name, dtype in cols.items():
            dsts = [d for d in owners.get(name, []) if d != t]
            if len(dsts) == 1 and columns[dsts[0]][name] is dtype:
                edges.append(Edge(t, name, dsts[0]))
            elif len(dsts) > 1:
                warnings.append(PQLWarning(
                    "W705", f"table '{t}': column '{name}' matches the primary key of {', '.join(dsts)}; "
                            "no edge was inferred", table=t, column=name, hints=["declare the edge in graph.toml"]))
    return edges, warnings


def graph_from_directory(path: Path) -> Graph:
    """§6.5: every ``*.csv`` and ``*.parquet`` file is a table named after its stem; keys, edges and
    time columns are inferred."""
    from pql.graphbuild import TableSpec, build_graph

    path = Path(path)
    if not path.is_dir():
        raise PQLDataError(f"data directory '{path}' not found", code="E701")
    files = sorted(p for p in path.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in (".csv", ".parquet"))
    if not files:
        raise PQLDataError(f"no .csv or .parquet files in '{path}'", code="E713")
    by_stem: dict[str, list[Path]] = {}
    for f in files:
        by_stem.setdefault(f.stem, []).append(f)
    dups = [PQLDataError(f"two files define table '{stem}': {fs[0].name}, {fs[1].name}", code="E714", table=stem)
            for stem, fs in by_stem.items() if len(fs) > 1]
    if dups:
        raise PQLDataError(dups[0].message, code="E714", errors=dups, table=dups[0].table_name)
    specs = [TableSpec(name=f.stem, source=f.resolve(), format=FORMAT_BY_SUFFIX[f.suffix.lower()],
                       infer_primary_key=True, infer_time_column=True) for f in files]
    return build_graph(specs, [], infer_edges=True, path=path)
