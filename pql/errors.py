"""The one exception tree of pql, and warnings.

Every diagnostic has a code (``E102``), a message naming the offending text, optional hints and
either a source span (query errors) or a table / column (data errors). ``render(source)`` shows
the source line with carets under the span, in the format of PQL-SPEC §9.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from pql.ast import Span

__all__ = [
    "Diagnostic",
    "PQLError",
    "PQLSyntaxError",
    "PQLValidationError",
    "PQLRunError",
    "PQLDataError",
    "PQLInternalError",
    "PQLWarning",
    "did_you_mean",
    "render_diagnostics",
]


def did_you_mean(name: str, candidates: Iterable[str], *, list_max: int = 20) -> tuple[str, list[str]]:
    """Spec §9.1: an exact match ignoring case first, then difflib's closest at cutoff 0.6.

    Returns ``(dym, hints)``: ``dym`` is ``"; did you mean 'x'?"`` or ``""``; ``hints`` lists the
    valid names when there are at most ``list_max`` of them.
    """
    import difflib

    cands = list(dict.fromkeys(candidates))
    best = next((c for c in cands if c.lower() == name.lower() and c != name), None)
    if best is None:
        close = difflib.get_close_matches(name, cands, n=1, cutoff=0.6)
        best = close[0] if close else None
    dym = f"; did you mean '{best}'?" if best is not None else ""
    hints: list[str] = []
    if cands and len(cands) <= list_max:
        hints.append("available: " + ", ".join(cands))
    return dym, hints


class Diagnostic:
    """Fields and rendering shared by errors and warnings."""

    code: str
    message: str
    severity: str
    hints: tuple[str, ...]
    span: Span | None
    table_name: str | None
    column_name: str | None

    def _init_diag(
        self,
        code: str,
        message: str,
        *,
        span: Span | None = None,
        hints: Sequence[str] = (),
        table: str | None = None,
        column: str | None = None,
        severity: str = "error",
    ) -> None:
        self.code = code
        self.message = message
        self.span = span
        self.hints = tuple(hints)
        self.table_name = table
        self.column_name = column
        self.severity = severity

    # Position accessors (1-based; None for data errors without a span).
    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.column if self.span else None

    @property
    def end_line(self) -> int | None:
        return self.span.end_line if self.span else None

    @property
    def end_column(self) -> int | None:
        return self.span.end_column if self.span else None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "hints": list(self.hints),
        }
        if self.table_name is not None:
            d["table"] = self.table_name
        if self.column_name is not None:
            d["column_name"] = self.column_name
        return d

    def render(self, source: str | None = None, filename: str = "query.pql") -> str:
        """Text form: ``error[E102]: msg``, position, source line and carets, hints."""
        out = [f"{self.severity}[{self.code}]: {self.message}"]
        if self.span is not None:
            out.append(f" --> {filename}:{self.span.line}:{self.span.column}")
            if source is not None:
                # Lines as the parser counts them: only "\n" ends a line (CR, U+2028 do not).
                lines = source.split("\n")
                ln = self.span.line
                if 1 <= ln <= len(lines):
                    text = "".join(" " if (c in "\t\r" or not c.isprintable()) else c for c in lines[ln - 1])
                    width = len(str(ln))
                    pad = " " * width
                    start = max(self.span.column - 1, 0)
                    if self.span.end_line == ln:
                        end = max(self.span.end_column - 1, start + 1)
                    else:
                        end = max(len(text), start + 1)
                    end = min(end, max(len(text), start + 1))
                    # Keep very long lines readable: show a window around the span.
                    if len(text) > 200:
                        lo = max(0, start - 60)
                        hi = min(len(text), max(end, start + 1) + 60)
                        prefix = "..." if lo > 0 else ""
                        text = prefix + text[lo:hi] + ("..." if hi < len(text) else "")
                        start, end = start - lo + len(prefix), min(end, hi) - lo + len(prefix)
                    out.append(f"{pad} |")
                    out.append(f"{ln} | {text}")
                    out.append(f"{pad} | {' ' * start}{'^' * max(end - start, 1)}")
        elif self.table_name is not None:
            where = self.table_name + (f".{self.column_name}" if self.column_name else "")
            out.append(f" --> table {where}")
        for h in self.hints:
            out.append(f"  = help: {h}")
        return "\n".join(out)


class PQLError(Exception, Diagnostic):
    """Root of every error pql raises on bad input."""

    default_code = "E900"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        span: Span | None = None,
        hints: Sequence[str] = (),
        table: str | None = None,
        column: str | None = None,
    ) -> None:
        Exception.__init__(self, message)
        self._init_diag(code or self.default_code, message, span=span, hints=hints, table=table, column=column)

    @property
    def errors(self) -> list["PQLError"]:
        return [self]

    def __str__(self) -> str:
        pos = f" at {self.span.line}:{self.span.column}" if self.span else ""
        return f"[{self.code}] {self.message}{pos}"


class PQLSyntaxError(PQLError):
    """E0xx and the parse-stage codes (E208, E209, E403-E406, E501-E503)."""

    default_code = "E001"


class PQLValidationError(PQLError):
    """One or more validation problems; ``.errors`` holds all of them."""

    default_code = "E100"

    def __init__(self, errors: Sequence[PQLError]) -> None:
        if not errors:
            raise ValueError("PQLValidationError needs at least one error")
        first = errors[0]
        msg = first.message if len(errors) == 1 else f"{first.message} (and {len(errors) - 1} more)"
        super().__init__(msg, code=first.code, span=first.span, hints=first.hints,
                         table=first.table_name, column=first.column_name)
        self._errors = list(errors)

    @property
    def errors(self) -> list[PQLError]:
        return list(self._errors)

    def render(self, source: str | None = None, filename: str = "query.pql") -> str:
        return render_diagnostics(self._errors, source, filename)


class PQLRunError(PQLError):
    """E6xx: options, anchors, splits, rankers."""

    default_code = "E600"


class PQLDataError(PQLError):
    """E7xx: graph files and data checks."""

    default_code = "E700"

    def __init__(self, message: str, *, code: str | None = None, errors: Sequence["PQLError"] = (),
                 **kw: Any) -> None:
        super().__init__(message, code=code, **kw)
        self._errors = list(errors)

    @property
    def errors(self) -> list[PQLError]:
        return list(self._errors) if self._errors else [self]

    def render(self, source: str | None = None, filename: str = "query.pql") -> str:
        if self._errors:
            return render_diagnostics(self._errors, source, filename)
        return Diagnostic.render(self, source, filename)


class PQLInternalError(PQLError):
    """E900: a bug in pql, never the user's fault."""

    default_code = "E900"


class PQLWarning(Diagnostic):
    """A warning: reported, never raised."""

    def __init__(self, code: str, message: str, *, span: Span | None = None, hints: Sequence[str] = (),
                 table: str | None = None, column: str | None = None) -> None:
        self._init_diag(code, message, span=span, hints=hints, table=table, column=column, severity="warning")

    def __repr__(self) -> str:
        return f"PQLWarning({self.code!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PQLWarning) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.code, self.message, self.span))


def render_diagnostics(diags: Iterable[Diagnostic], source: str | None = None, filename: str = "query.pql") -> str:
    return "\n\n".join(Diagnostic.render(d, source, filename) for d in diags)
