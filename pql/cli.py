"""The `pql` command line: a thin shell over the core API.

Data goes to stdout, messages to stderr. Exit codes: 0 ok, 1 handled error (bad query, bad data),
2 usage, 3 internal error, 130 interrupted. Tracebacks only with --debug.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

import pql
from pql.errors import PQLError, PQLInternalError, PQLSyntaxError, render_diagnostics

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class Settings:
    def __init__(self, debug: bool = False, error_format: str = "text", verbosity: int = 0) -> None:
        self.debug = debug
        self.error_format = error_format
        self.verbosity = verbosity

    @property
    def color(self) -> bool:
        return "NO_COLOR" not in os.environ and sys.stderr.isatty()


def _settings() -> Settings:
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx else None
    return obj if isinstance(obj, Settings) else Settings()


def info(msg: str) -> None:
    """A message for the user on stderr, silenced by -q."""
    if _settings().verbosity >= 0:
        click.echo(msg, err=True)


def _emit_errors(err: PQLError, source: str | None, filename: str) -> None:
    s = _settings()
    if s.error_format == "json":
        click.echo(json.dumps({"errors": [e.to_dict() for e in err.errors]}, indent=2), err=True)
        return
    text = render_diagnostics(err.errors, source, filename)
    if s.color:
        text = text.replace("error[", "\x1b[1;31merror\x1b[0m[", 1) if len(err.errors) == 1 else text
    click.echo(text, err=True)


def _emit_warnings(warnings: list[Any], source: str | None, filename: str) -> None:
    if not warnings or _settings().verbosity < 0:
        return
    if _settings().error_format == "json":
        click.echo(json.dumps({"warnings": [w.to_dict() for w in warnings]}, indent=2), err=True)
    else:
        click.echo(render_diagnostics(warnings, source, filename), err=True)


class QueryInput:
    """A query read from a file, stdin or --query, remembered for error rendering."""

    def __init__(self, text: str, filename: str, path: Path | None) -> None:
        self.text = text
        self.filename = filename
        self.path = path


def read_query(query_file: str | None, inline: str | None) -> QueryInput:
    if inline is not None:
        if query_file is not None:
            raise click.UsageError("give either QUERY_FILE or --query, not both")
        return QueryInput(inline, "<query>", None)
    if query_file is None:
        raise click.UsageError("missing QUERY_FILE (or --query \"PREDICT ...\")")
    if query_file == "-":
        data = sys.stdin.buffer.read()
        name, path = "<stdin>", None
    else:
        path = Path(query_file)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise PQLError(f"query file '{query_file}' not found", code="E020") from None
        except IsADirectoryError:
            raise PQLError(f"query file '{query_file}' is a directory", code="E020") from None
        except OSError as exc:
            raise PQLError(f"cannot read query file '{query_file}': {exc.strerror}", code="E020") from None
        name = query_file
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise PQLSyntaxError(f"the query is not valid UTF-8: byte 0x{data[exc.start]:02x} at {line}:{col}",
                             code="E005", span=pql.ast.Span(line, col, line, col + 1)) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return QueryInput(text, name, path)


def resolve_graph(graph: str | None, data: str | None, query: QueryInput | None) -> "pql.Graph":
    """--graph FILE|DIR, or --data DIR, else a graph.toml next to the query file, else in the cwd."""
    if graph and data:
        raise click.UsageError("give either --graph or --data, not both")
    if data:
        return pql.Graph.from_directory(data)
    if graph:
        return pql.Graph.load(graph)
    candidates = []
    if query is not None and query.path is not None:
        candidates.append(query.path.parent / "graph.toml")
    candidates.append(Path("graph.toml"))
    for c in candidates:
        if c.is_file():
            return pql.Graph.from_toml(c)
    raise click.UsageError("no graph: pass --graph graph.toml (or --data DIR); none found next to the query "
                           "or in the current folder")


def parse_set_options(values: tuple[str, ...]) -> dict[str, Any]:
    """--set name=value pairs; values are JSON when they parse as JSON, else strings."""
    out: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise click.UsageError(f"--set expects name=value, got '{item}'")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def run_guarded(fn: Callable[[], int | None], source_ref: list[QueryInput | None]) -> None:
    """Run a command body: PQLError -> rendered, exit 1; anything unexpected -> E900, exit 3."""
    settings = _settings()
    try:
        code = fn()
    except PQLError as err:
        q = source_ref[0]
        _emit_errors(err, q.text if q else None, q.filename if q else "query.pql")
        if settings.debug:
            raise
        sys.exit(EXIT_ERROR)
    except (click.exceptions.Exit, click.ClickException, SystemExit):
        raise
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except RecursionError:
        err = PQLInternalError("the query is nested too deeply to process")
        _emit_errors(err, None, "query.pql")
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into E900
        if settings.debug:
            raise
        err = PQLInternalError(f"internal error, please report: {type(exc).__name__}: {exc}",
                               hints=["rerun with --debug for a traceback"])
        _emit_errors(err, None, "query.pql")
        sys.exit(EXIT_INTERNAL)
    sys.exit(code or EXIT_OK)


# ---------------------------------------------------------------------------------------------

query_arg = click.argument("query_file", required=False, metavar="QUERY_FILE")
inline_opt = click.option("--query", "inline", metavar="TEXT", help="Query text instead of QUERY_FILE.")
graph_opt = click.option("--graph", "graph", metavar="PATH", help="graph.toml (or a folder holding one).")
data_opt = click.option("--data", "data", metavar="DIR", help="Infer the graph from a folder of data files.")
set_opt = click.option("--set", "set_values", multiple=True, metavar="NAME=VALUE", help="Runtime option (repeatable).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.version_option(pql.__version__, "--version", prog_name="pql")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.option("--error-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-q", "--quiet", "quiet", is_flag=True, help="Only data and errors.")
@click.option("-v", "--verbose", "verbose", count=True, help="More messages.")
@click.pass_context
def main(ctx: click.Context, debug: bool, error_format: str, quiet: bool, verbose: int) -> None:
    """pql: predictive queries on your own data.

    \b
    Exit codes: 0 ok, 1 handled error, 2 usage, 3 internal error, 130 interrupted.
    """
    ctx.obj = Settings(debug=debug, error_format=error_format, verbosity=-1 if quiet else verbose)
    if ctx.invoked_subcommand is None:  # `pql` alone: the REPL on a terminal with ./graph.toml, else the help
        from pql.repl import maybe_start_repl

        maybe_start_repl(ctx)


@main.command()
@query_arg
@inline_opt
@graph_opt
@data_opt
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def check(query_file: str | None, inline: str | None, graph: str | None, data: str | None, fmt: str) -> None:
    """Validate a query against a graph and explain it."""
    ref: list[QueryInput | None] = [None]

    def body() -> int:
        q = ref[0] = read_query(query_file, inline)
        g = resolve_graph(graph, data, q)
        if fmt == "json":
            return _check_json(q, g)
        vq = pql.validate(q.text, g)
        from pql.describe import describe_query

        click.echo(f"valid: {vq.task_type.value}")
        click.echo(describe_query(vq))
        _emit_warnings(vq.warnings, q.text, q.filename)
        return EXIT_OK

    run_guarded(body, ref)


def _check_json(q: QueryInput, g: "pql.Graph") -> int:
    def brief(d: Any) -> dict[str, Any]:
        full = d.to_dict()
        return {"code": full["code"], "line": full["line"], "column": full["column"], "message": full["message"],
                "end_line": full["end_line"], "end_column": full["end_column"], "hints": full["hints"]}

    try:
        vq = pql.validate(q.text, g)
    except PQLError as err:
        click.echo(json.dumps({"valid": False, "task_type": None, "errors": [brief(e) for e in err.errors],
                               "warnings": []}, indent=2))
        return EXIT_ERROR
    click.echo(json.dumps({"valid": True, "task_type": vq.task_type.value, "errors": [],
                           "warnings": [brief(w) for w in vq.warnings]}, indent=2))
    return EXIT_OK


@main.command()
@query_arg
@inline_opt
@click.option("--check", "check_only", is_flag=True, help="Exit 1 if the file is not in canonical form.")
@click.option("--multiline", is_flag=True, help="Put FOR, WHERE and ASSUMING on their own lines.")
def fmt(query_file: str | None, inline: str | None, check_only: bool, multiline: bool) -> None:
    """Print a query in canonical form."""
    ref: list[QueryInput | None] = [None]

    def body() -> int:
        q = ref[0] = read_query(query_file, inline)
        text = pql.format(pql.parse(q.text), multiline=multiline)
        if check_only:
            if q.text.rstrip("\n") != text:
                info(f"{q.filename}: not in canonical form")
                return EXIT_ERROR
            return EXIT_OK
        click.echo(text)
        return EXIT_OK

    run_guarded(body, ref)


@main.command("parse")
@query_arg
@inline_opt
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json", show_default=True)
def parse_cmd(query_file: str | None, inline: str | None, fmt: str) -> None:
    """Print the AST of a query."""
    ref: list[QueryInput | None] = [None]

    def body() -> int:
        q = ref[0] = read_query(query_file, inline)
        tree = pql.parse(q.text)
        if fmt == "json":
            click.echo(json.dumps(pql.ast.to_dict(tree), indent=2))
        else:
            click.echo(repr(tree))
        return EXIT_OK

    run_guarded(body, ref)


def _compiled(q: QueryInput, graph: str | None, data: str | None, set_values: tuple[str, ...]):
    g = resolve_graph(graph, data, q)
    return pql.compile(q.text, g, **parse_set_options(set_values))


@main.command("compile")
@query_arg
@inline_opt
@graph_opt
@data_opt
@set_opt
@click.option("--stage", type=click.Choice(["training", "prediction"]), default="training", show_default=True)
@click.option("--dialect", default="duckdb", show_default=True, help="Any SQL dialect sqlglot knows.")
@click.option("--explain", is_flag=True, help="Task type, anchors, windows and the stages' SQL.")
def compile_cmd(query_file, inline, graph, data, set_values, stage, dialect, explain) -> None:
    """Print the SQL that builds the training or prediction table."""
    ref: list[QueryInput | None] = [None]

    def body() -> int:
        q = ref[0] = read_query(query_file, inline)
        cq = _compiled(q, graph, data, set_values)
        click.echo(cq.explain() if explain else cq.sql(stage=stage, dialect=dialect))
        _emit_warnings(cq.warnings, q.text, q.filename)
        return EXIT_OK

    run_guarded(body, ref)


@main.command()
@query_arg
@inline_opt
@graph_opt
@data_opt
@set_opt
@click.option("--anchors", metavar="T1,T2,...", help="Label exactly these anchor times.")
@click.option("--out", "out", metavar="FILE", help="Write .parquet or .csv (default: a preview on stdout).")
@click.option("--explain", is_flag=True, help="Task type, anchors, windows and the stages' SQL; runs nothing heavy.")
@click.option("--limit", default=20, show_default=True, help="Rows in the stdout preview.")
def labels(query_file, inline, graph, data, set_values, anchors, out, explain, limit) -> None:
    """Build the label table (training anchors with SPLIT, or exactly --anchors)."""
    ref: list[QueryInput | None] = [None]

    def body() -> int:
        from pql.output import parse_anchor_list, preview_table, write_table

        q = ref[0] = read_query(query_file, inline)
        if out is not None and not out.lower().endswith((".parquet", ".csv")):
            raise click.UsageError("--out must end in .parquet or .csv")
        cq = _compiled(q, graph, data, set_values)
        if explain:
            click.echo(cq.explain())
            return EXIT_OK
        table = cq.labels(parse_anchor_list(anchors)) if anchors else cq.training_table()
        _emit_warnings(cq.warnings, q.text, q.filename)
        if out:
            write_table(table, Path(out))
            info(f"wrote {table.num_rows} rows to {out}")
        else:
            click.echo(preview_table(table, limit))
        return EXIT_OK

    run_guarded(body, ref)


@main.command()
@graph_opt
@data_opt
def describe(graph: str | None, data: str | None) -> None:
    """Print every table of the graph with its columns' dtypes and semantic types."""
    ref: list[QueryInput | None] = [None]

    def body() -> int:
        g = resolve_graph(graph, data, None)
        click.echo(g.describe())
        _emit_warnings(getattr(g, "warnings", []), None, "graph")
        return EXIT_OK

    run_guarded(body, ref)


from pql.cli_jobs import register as _register_jobs  # noqa: E402 - pql run / predict / sql
_register_jobs(main)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False), metavar="DIR")
@click.option("--force", is_flag=True, help="Replace an existing DIR/graph.toml.")
@click.option("--print", "print_only", is_flag=True, help="Print the graph.toml instead of writing it.")
def init(directory: str, force: bool, print_only: bool) -> None:
    """Write DIR/graph.toml inferred from the data files in DIR, and show what was inferred."""
    ref: list[QueryInput | None] = [None]

    def body() -> int:
        from pql.output import write_text_atomically

        d = Path(directory)
        target = d / "graph.toml"
        if target.exists() and not (force or print_only):
            raise PQLError(f"'{target}' exists; pass --force to replace it", code="E715")
        g = pql.Graph.from_directory(d)
        text = g.to_toml(base=d)
        if print_only:
            click.echo(text)
            return EXIT_OK
        write_text_atomically(text, target)
        info(_inference_summary(g))
        _emit_warnings(g.warnings, None, "graph")
        info(f"wrote {target}: review the keys, time columns, links and semantic types, then run "
             f"'pql check QUERY --graph {target}'")
        return EXIT_OK

    run_guarded(body, ref)


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell-completion script, e.g. eval "$(pql completion bash)"."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    click.echo(cls(main, {}, "pql", "_PQL_COMPLETE").source())


def _inference_summary(g: "pql.Graph") -> str:
    lines = ["inferred:"]
    for t in g:
        pk = t.primary_key or "none"
        tc = t.time_column or "none (static table)"
        lines.append(f"  {t.name}: {len(t.columns)} columns, primary key {pk}, time column {tc}")
    lines.append("  links: " + (", ".join(str(e) for e in g.edges) if g.edges else "none"))
    return "\n".join(lines)


from pql.repl import register_repl  # noqa: E402 - pql repl
register_repl(main)


if __name__ == "__main__":  # pragma: no cover
    main()
