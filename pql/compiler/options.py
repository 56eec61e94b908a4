"""Runtime options (spec §15): names, parsing and validation (E601 unknown, E602 invalid).

Values may come from Python (ints, datetimes, tuples) or from the CLI as text (``--set
timeframe_step=7``), so every parser accepts both. Each option is one entry of ``OPTION_PARSERS``;
options that other stages use (rankers, metrics) are type-checked here and passed through.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Callable

from pql.errors import PQLRunError, did_you_mean

__all__ = ["SplitSpec", "Options", "parse_options", "parse_timestamp", "invalid", "OPTION_NAMES", "SPLIT_KINDS"]


class _Invalid(ValueError):
    """Raised by an option parser with the reason; turned into E602."""


def invalid(name: str, value: Any, reason: str) -> PQLRunError:
    return PQLRunError(f"{name} = {value!s} is invalid: {reason}", code="E602")


@dataclass(frozen=True)
class SplitSpec:
    """One of the split kinds of §10.4; ``args`` as parsed (fractions, a span or timestamps)."""

    kind: str
    args: tuple[Any, ...]

    def __str__(self) -> str:
        def fmt(a: Any) -> str:
            return a.isoformat(sep=" ") if isinstance(a, dt.datetime) else str(a)

        return f"{self.kind}({', '.join(fmt(a) for a in self.args)})"


# -- value parsers ------------------------------------------------------------------------------


def _int(value: Any, *, minimum: int | None = None) -> int:
    if isinstance(value, bool):
        raise _Invalid("expected a whole number")
    if isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        n = int(value)
    else:
        raise _Invalid("expected a whole number")
    if minimum is not None and n < minimum:
        raise _Invalid(f"must be at least {minimum}")
    return n


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Invalid("expected a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _Invalid("expected a number") from None


def parse_timestamp(value: Any) -> dt.datetime:
    """A naive UTC datetime from a datetime, a date or ISO text (``2024-01-31``, ``2024-01-31 08:00:00``)."""
    if isinstance(value, dt.datetime):
        ts = value
    elif isinstance(value, dt.date):
        ts = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip().strip("'\"")
        text = re.sub(r"^(\d{4})[/.](\d{1,2})[/.](\d{1,2})", r"\1-\2-\3", text)
        m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})(.*)", text)
        if m:
            text = f"{m.group(1)}-{int(m.group(2)):02d}-{int(m.group(3)):02d}{m.group(4)}"
        try:
            ts = dt.datetime.fromisoformat(text)
        except ValueError:
            raise _Invalid("expected a timestamp like 2024-01-31 or 2024-01-31 08:00:00") from None
    else:
        if hasattr(value, "to_pydatetime"):  # pandas / numpy timestamps
            return parse_timestamp(value.to_pydatetime())
        raise _Invalid("expected a timestamp like 2024-01-31 or 2024-01-31 08:00:00")
    if ts.tzinfo is not None:
        ts = ts.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return ts


def _fractions(args: list[Any]) -> tuple[float, float]:
    if len(args) != 2:
        raise _Invalid("expected two fractions (val, test)")
    val, test = (_float(a) for a in args)
    if not (0 < val < 1 and 0 < test < 1):
        raise _Invalid("fractions must be between 0 and 1 (exclusive)")
    if val + test >= 1:
        raise _Invalid("val + test must leave room for a train split (below 1)")
    return val, test


def _span(args: list[Any]) -> tuple[int]:
    if len(args) != 1:
        raise _Invalid("expected one span D in the query's time unit")
    return (_int(args[0], minimum=1),)


def _time_range(args: list[Any]) -> tuple[dt.datetime, dt.datetime]:
    if len(args) != 2:
        raise _Invalid("expected two timestamps (val_start, test_start)")
    val_start, test_start = (parse_timestamp(a) for a in args)
    if val_start >= test_start:
        raise _Invalid("val_start must be before test_start")
    return val_start, test_start


SPLIT_KINDS: dict[str, Callable[[list[Any]], tuple[Any, ...]]] = {
    "chronological": _fractions,
    "last_span": _span,
    "time_range": _time_range,
    "entity_time": _fractions,
    "random": _fractions,
}


def _split(value: Any) -> SplitSpec:
    if isinstance(value, SplitSpec):
        kind, args = value.kind, list(value.args)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*([A-Za-z_]+)\s*(?:\((.*)\))?\s*", value, flags=re.S)
        if not m:
            raise _Invalid("expected kind(args), e.g. chronological(0.1, 0.1)")
        kind = m.group(1)
        args = [a.strip() for a in m.group(2).split(",")] if m.group(2) and m.group(2).strip() else []
    elif isinstance(value, (tuple, list)) and value and isinstance(value[0], str):
        kind, args = value[0], list(value[1:])
    elif isinstance(value, dict) and isinstance(value.get("kind"), str):
        kind, args = value["kind"], list(value.get("args", ()))
    else:
        raise _Invalid("expected kind(args), e.g. chronological(0.1, 0.1)")
    if kind not in SPLIT_KINDS:
        dym, _ = did_you_mean(kind, SPLIT_KINDS)
        raise _Invalid(f"unknown split kind '{kind}'{dym}; use " + ", ".join(SPLIT_KINDS))
    return SplitSpec(kind, SPLIT_KINDS[kind](args))


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().strip("'\"")
        if text not in allowed:
            raise _Invalid("expected one of " + ", ".join(f'"{a}"' for a in allowed))
        return text

    return parse


def _text(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            raise _Invalid("expected a PQL condition")
        return value
    from pql.ast import CONDITION_TYPES

    if isinstance(value, CONDITION_TYPES):
        return value
    raise _Invalid("expected a PQL condition")


def _list_of(item: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, ...]]:
    def parse(value: Any) -> tuple[Any, ...]:
        if isinstance(value, str):
            parts = [p for p in re.split(r"[,\s]+", value.strip().strip("[]()")) if p]
        elif isinstance(value, (list, tuple, set, frozenset)):
            parts = list(value)
        else:
            raise _Invalid("expected a list")
        if not parts:
            raise _Invalid("expected a non-empty list")
        return tuple(item(p) for p in parts)

    return parse


def _threshold(value: Any) -> float:
    x = _float(value)
    if not 0 < x < 1:
        raise _Invalid("must be between 0 and 1 (exclusive)")
    return x


OPTION_PARSERS: dict[str, Callable[[Any], Any]] = {
    "timeframe_step": lambda v: _int(v, minimum=1),
    "start_time": parse_timestamp,
    "end_time": parse_timestamp,
    "max_anchors": lambda v: _int(v, minimum=1),
    "split": _split,
    "seed": _int,
    "anchor_time": lambda v: v,  # checked when the prediction anchor is computed (E609)
    "entity_filter": _text,
    "candidates": _choice("all", "history"),
    "candidate_filter": _text,
    "num_predictions": lambda v: _int(v, minimum=1),
    "num_classes": lambda v: _int(v, minimum=1),
    "threshold": _threshold,
    "outputs": _list_of(_choice("predictions", "embeddings")),
    "metrics": _list_of(lambda v: str(v).strip().strip("'\"")),
    "k_values": _list_of(lambda v: _int(v, minimum=1)),
}
OPTION_NAMES = tuple(OPTION_PARSERS)


@dataclass(frozen=True)
class Options:
    """Parsed options; ``None`` means unset (the defaults of §15 apply)."""

    values: dict[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        v = self.values.get(name)
        return default if v is None else v

    def __contains__(self, name: str) -> bool:
        return self.values.get(name) is not None


def parse_options(options: dict[str, Any]) -> Options:
    """Check names (E601, with did-you-mean) and values (E602); ``None`` values mean unset."""
    parsed: dict[str, Any] = {}
    for name, value in options.items():
        if name not in OPTION_PARSERS:
            dym, hints = did_you_mean(name, OPTION_NAMES)
            raise PQLRunError(f"unknown option '{name}'{dym}", code="E601", hints=hints)
        if value is None:
            continue
        try:
            parsed[name] = OPTION_PARSERS[name](value)
        except _Invalid as e:
            raise invalid(name, value, str(e)) from None
    return Options(parsed)
