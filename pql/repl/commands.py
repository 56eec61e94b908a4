"""The REPL's dot commands: one registry that dispatches them, completes them and writes ``.help``.

Each command is a function ``(ctx, arg) -> Reply`` registered with ``@command(...)``. It calls the
core API and returns what to show (plain text or prompt_toolkit formatted text); it never prints.
Bad input raises :class:`PQLError` (rendered by the shell with code and caret) or
:class:`ReplUsageError`. Long work reports progress through ``ctx.progress``, which also raises
:class:`Cancelled` once the user pressed Ctrl-C.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from prompt_toolkit.formatted_text import FormattedText

import pql
from pql.errors import PQLError, did_you_mean, render_diagnostics
from pql.graph import Graph

__all__ = ["Command", "Registry", "REGISTRY", "ReplContext", "ReplUsageError", "Cancelled", "Reply", "command",
           "RUN_ONLY_SETTINGS", "REPL_SETTINGS", "setting_names"]

Reply = str | FormattedText | None

#: Settings of ``.set`` that are not runtime options of the compiler: ``.run``'s own arguments
#: (pql.jobs.run's) and the REPL's (``limit``, rows in previews).
RUN_ONLY_SETTINGS = ("ranker", "out", "overwrite", "output_format")
REPL_SETTINGS = ("limit",)


def setting_names() -> list[str]:
    """Every name ``.set`` knows: the REPL's, ``.run``'s and the compiler's runtime options."""
    from pql.compiler.options import OPTION_NAMES

    return list(dict.fromkeys((*REPL_SETTINGS, *RUN_ONLY_SETTINGS, *OPTION_NAMES)))


class ReplUsageError(Exception):
    """A dot command used wrongly (shown as ``usage: ...``)."""


class Cancelled(Exception):
    """Raised in a running command once the user pressed Ctrl-C."""


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    fn: Callable[["ReplContext", str], Reply]
    usage: str = ""
    arg: str = ""  # "query", "table", "setting" or "" (what the completer offers for the argument)
    aliases: tuple[str, ...] = ()


class Registry:
    """Commands by name (and alias), in the order they were registered."""

    def __init__(self) -> None:
        self._commands: list[Command] = []
        self._by_name: dict[str, Command] = {}

    def add(self, cmd: Command) -> None:
        for name in (cmd.name, *cmd.aliases):
            if name in self._by_name:
                raise ValueError(f"dot command {name} is registered twice")
            self._by_name[name] = cmd
        self._commands.append(cmd)

    def command(self, name: str, summary: str, *, usage: str = "", arg: str = "",
                aliases: tuple[str, ...] = ()) -> Callable[[Callable[["ReplContext", str], Reply]], Callable]:
        def deco(fn: Callable[["ReplContext", str], Reply]) -> Callable[["ReplContext", str], Reply]:
            self.add(Command(name, summary, fn, usage or name, arg, aliases))
            return fn

        return deco

    def lookup(self, name: str) -> Command:
        cmd = self._by_name.get(name.lower())
        if cmd is None:
            dym, _ = did_you_mean(name, self._by_name)
            raise ReplUsageError(f"unknown command '{name}'{dym}; .help lists the commands")
        return cmd

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands)

    def names(self) -> list[str]:
        return list(self._by_name)

    def completion_table(self) -> dict[str, tuple[str, str]]:
        """Every name and alias -> (summary, argument kind), for the completer."""
        return {name: (cmd.summary, cmd.arg) for name, cmd in self._by_name.items()}

    def help_text(self) -> str:
        width = max(len(c.usage) for c in self._commands)
        lines = ["Type a query (it runs as .check once it parses; an empty line submits what you typed),",
                 "or a command:"]
        for c in self._commands:
            alias = f" (also {', '.join(c.aliases)})" if c.aliases else ""
            lines.append(f"  {c.usage:<{width}}  {c.summary}{alias}")
        lines.append("Q is a query on one line; without it, the last query that ran without error. "
                     "Tab completes, Ctrl-C cancels, Ctrl-D quits.")
        return "\n".join(lines)


REGISTRY = Registry()
command = REGISTRY.command


class ReplContext:
    """What commands see of the session: the graph, one shared database, settings, the last query."""

    def __init__(self, graph: Graph, *, settings: dict[str, Any] | None = None) -> None:
        self.graph = graph
        self.settings: dict[str, Any] = dict(settings or {})
        self.last_query: str | None = None
        self.source: str | None = None  # the query text the current command works on (for carets)
        self.quit = False
        self.cancel_event = threading.Event()
        self.progress_sink: Callable[[str, float], None] | None = None
        self._db: Any = None

    # -- data ----------------------------------------------------------------------------------
    def database(self) -> Any:
        """The session's DuckDB database over the graph (created on first use, then reused)."""
        if self._db is None:
            from pql.data import Database

            self._db = Database(self.graph)
        return self._db

    def forget_database(self) -> None:
        """After a cancelled command that did not stop in time: the next command opens a fresh one."""
        self._db = None

    # -- running -------------------------------------------------------------------------------
    def begin(self) -> None:
        self.cancel_event.clear()
        self.source = None

    def cancel(self) -> None:
        """Ask the running command to stop: its next progress report raises, DuckDB is interrupted."""
        self.cancel_event.set()
        db = self._db
        if db is not None:
            try:
                db.con.interrupt()
            except Exception:  # noqa: BLE001 - a closed or idle connection has nothing to interrupt
                pass

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled()

    def progress(self, message: str, fraction: float) -> None:
        self.check_cancelled()
        if self.progress_sink is not None:
            self.progress_sink(message, fraction)

    # -- arguments -----------------------------------------------------------------------------
    def query(self, arg: str) -> str:
        """The command's query: its argument, else the last query that ran without error."""
        text = arg.strip()
        if not text:
            if self.last_query is None:
                raise ReplUsageError("no query yet: give one after the command, e.g. .check PREDICT ...")
            text = self.last_query
        self.source = text
        return text

    def succeeded(self) -> None:
        """The command finished without error: its query becomes the last query."""
        if self.source is not None:
            self.last_query = self.source

    def compile_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.settings.items() if k not in RUN_ONLY_SETTINGS + REPL_SETTINGS}

    def compiled(self, text: str) -> Any:
        return pql.compile(text, self.graph, database=self.database(), **self.compile_options())


# -- formatting helpers --------------------------------------------------------------------------

def warnings_text(warnings: list[Any], source: str | None) -> FormattedText:
    if not warnings:
        return FormattedText([])
    return FormattedText([("class:warning", render_diagnostics(warnings, source, "<input>") + "\n")])


def _join(*parts: Reply) -> FormattedText:
    out: list[tuple[str, str]] = []
    for p in parts:
        if p is None:
            continue
        if isinstance(p, str):
            out.append(("", p if p.endswith("\n") or not p else p + "\n"))
        else:
            out.extend(p)
    return FormattedText(out)


def _table_line(graph: Graph, name: str) -> str:
    t = graph.tables[name]
    bits = [f"primary key {t.primary_key}" if t.primary_key else "no primary key"]
    if t.time_column:
        bits.append(f"time {t.time_column}")
    if t.end_time_column:
        bits.append(f"end time {t.end_time_column}")
    bits.append(f"{len(t.columns)} columns")
    return ", ".join(bits)


def _table(ctx: ReplContext, name: str) -> str:
    name = name.strip().strip("`")
    if not name:
        raise ReplUsageError("usage: .schema TABLE")
    if name not in ctx.graph.tables:
        dym, hints = did_you_mean(name, ctx.graph.tables)
        raise PQLError(f"unknown table '{name}'{dym}; table names are case-sensitive", code="E101", hints=hints)
    return name


# -- the commands ------------------------------------------------------------------------------

@command(".help", "This list of commands.", aliases=(".h", ".?"))
def _help(ctx: ReplContext, arg: str) -> Reply:
    return REGISTRY.help_text()


@command(".tables", "The tables of the graph with their keys and time columns.")
def _tables(ctx: ReplContext, arg: str) -> Reply:
    names = list(ctx.graph.tables)
    if not names:
        return "the graph has no tables"
    width = max(len(n) for n in names)
    return FormattedText([frag for n in names
                          for frag in (("class:heading", f"{n:<{width}}"), ("", f"  {_table_line(ctx.graph, n)}\n"))])


@command(".schema", "Columns of table T: dtype, semantic type, keys and links.", usage=".schema T", arg="table")
def _schema(ctx: ReplContext, arg: str) -> Reply:
    name = _table(ctx, arg)
    t = ctx.graph.tables[name]
    rows = [("class:heading", f"{name}"), ("", f" ({_table_line(ctx.graph, name)})\n")]
    width = max([len(c) for c in t.columns] + [6])
    for c in t.columns.values():
        notes = []
        if c.name == t.primary_key:
            notes.append("primary key")
        if c.name == t.time_column:
            notes.append("time column")
        if c.name == t.end_time_column:
            notes.append("end time column")
        fk = ctx.graph.foreign_key(name, c.name)
        if fk is not None:
            notes.append(f"-> {fk.dst_table}")
        line = f"  {c.name:<{width}}  {str(c.dtype):<13} {str(c.stype):<16}"
        rows.append(("", line if notes else line.rstrip()))
        rows.append(("class:dim", ", ".join(notes) + "\n"))
    children = ctx.graph.children(name)
    if children:
        rows.append(("class:dim", "  referenced by " + ", ".join(f"{e.src_table}.{e.fkey}" for e in children) + "\n"))
    return FormattedText(rows)


@command(".graph", "The whole graph: every table, column and edge.")
def _graph(ctx: ReplContext, arg: str) -> Reply:
    head = FormattedText([("class:dim", f"graph {ctx.graph.path}\n")]) if ctx.graph.path is not None else None
    return _join(head, ctx.graph.describe())


@command(".check", "Validate Q and explain it: task type, target, entity, windows.", usage=".check Q", arg="query")
def _check(ctx: ReplContext, arg: str) -> Reply:
    from pql.describe import describe_query

    text = ctx.query(arg)
    vq = pql.validate(text, ctx.graph)
    return _join(FormattedText([("class:ok", f"valid: {vq.task_type.value}\n")]), describe_query(vq),
                 warnings_text(list(vq.warnings), text))


@command(".explain", "The compiler's explanation of Q: anchors, windows, splits, SQL per stage.",
         usage=".explain Q", arg="query")
def _explain(ctx: ReplContext, arg: str) -> Reply:
    text = ctx.query(arg)
    cq = ctx.compiled(text)
    return _join(cq.explain(), warnings_text(cq.warnings, text))


@command(".sql", "The SQL (DuckDB) that builds the training table of Q.", usage=".sql Q", arg="query")
def _sql(ctx: ReplContext, arg: str) -> Reply:
    text = ctx.query(arg)
    cq = ctx.compiled(text)
    return _join(cq.sql(stage="training", dialect="duckdb"), warnings_text(cq.warnings, text))


@command(".labels", "Build the label table of Q and show its first rows.", usage=".labels Q", arg="query")
def _labels(ctx: ReplContext, arg: str) -> Reply:
    from pql.output import preview_table

    text = ctx.query(arg)
    cq = ctx.compiled(text)
    ctx.progress("building the label table", 0.0)
    table = cq.training_table()
    ctx.check_cancelled()
    limit = int(ctx.settings.get("limit", 10))
    return _join(preview_table(table, limit), warnings_text(cq.warnings, text))


@command(".run", "Train, evaluate against baselines and predict Q, as pql run does.",
         usage=".run Q", arg="query")
def _run(ctx: ReplContext, arg: str) -> Reply:
    try:
        from pql.jobs import run
    except ImportError:
        raise ReplUsageError(".run is unavailable: this pql has no training jobs (pql.jobs)") from None
    from pql.cli_jobs import metrics_report
    from pql.output import preview_table

    text = ctx.query(arg)
    s = ctx.settings
    result = run(text, ctx.graph, out_dir=s.get("out"), ranker=s.get("ranker", "gbdt"),
                 overwrite=bool(s.get("overwrite", False)), output_format=s.get("output_format", "parquet"),
                 progress=ctx.progress, database=ctx.database(), **ctx.compile_options())
    ctx.check_cancelled()
    parts: list[Reply] = [metrics_report(result.metrics_json()), "predictions:",
                          preview_table(result.predictions, int(s.get("limit", 10)))]
    if result.out_dir is not None:
        parts.append(FormattedText([("class:dim", f"wrote {result.out_dir}: "
                                     + ", ".join(p.name for p in result.files) + "\n")]))
    return _join(*parts, warnings_text(result.warnings, text))


@command(".set", "Show the settings, or set one: ranker, out, seed, limit or a runtime option.",
         usage=".set [NAME=VALUE]", arg="setting")
def _set(ctx: ReplContext, arg: str) -> Reply:
    import json

    arg = arg.strip()
    if not arg:
        if not ctx.settings:
            return "no settings (defaults: ranker=gbdt, limit=10, no output folder)"
        return "\n".join(f"{k} = {json.dumps(v)}" for k, v in ctx.settings.items())
    name, eq, value = arg.partition("=")
    name = name.strip()
    if not eq or not name:
        raise ReplUsageError("usage: .set NAME=VALUE (or .unset NAME)")
    try:
        ctx.settings[name] = json.loads(value)
    except json.JSONDecodeError:
        ctx.settings[name] = value.strip()
    return f"{name} = {json.dumps(ctx.settings[name])}"


@command(".unset", "Forget a setting.", usage=".unset NAME", arg="setting")
def _unset(ctx: ReplContext, arg: str) -> Reply:
    name = arg.strip()
    if name not in ctx.settings:
        raise ReplUsageError(f"'{name}' is not set" if name else "usage: .unset NAME")
    del ctx.settings[name]
    return f"{name} unset"


@command(".quit", "Leave the REPL (Ctrl-D too).", aliases=(".exit", ".q"))
def _quit(ctx: ReplContext, arg: str) -> Reply:
    ctx.quit = True
    return None
