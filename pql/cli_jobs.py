"""The job commands of the `pql` CLI: `pql run`, `pql predict`, `pql sql` (a thin shell over pql.jobs).

Registered on the main group by ``register(main)``. Same conventions as pql/cli.py: data to stdout,
messages and progress to stderr (a rich progress bar only on a terminal), -q silences messages,
errors rendered by ``run_guarded`` with exit codes 0/1/2/3/130.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from pql.cli import (EXIT_OK, QueryInput, _emit_warnings, _settings, data_opt, graph_opt, info, inline_opt,
                     parse_set_options, query_arg, read_query, resolve_graph, run_guarded, set_opt)
from pql.errors import PQLRunError

__all__ = ["register", "run_cmd", "predict_cmd", "sql_cmd", "metrics_report"]

FORMAT_CHOICE = click.Choice(["parquet", "csv", "duckdb"])


@contextlib.contextmanager
def progress_reporter(title: str) -> Iterator[Callable[[str, float], None] | None]:
    """A rich progress bar on a terminal; plain stage lines with -v elsewhere; nothing with -q."""
    settings = _settings()
    if settings.verbosity < 0:
        yield None
        return
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True, no_color=not settings.color)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task(title, total=1.0)
            yield lambda msg, frac: bar.update(task, completed=frac, description=msg[:60])
        return
    if settings.verbosity >= 1:
        import time

        t0 = time.perf_counter()
        yield lambda msg, frac: click.echo(f"[{frac:4.0%} {time.perf_counter() - t0:6.1f}s] {msg}", err=True)
        return
    yield None


def _fmt(v: Any) -> str:
    if v is None:
        return "NULL"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def metrics_report(result: dict[str, Any]) -> str:
    """A table of metrics: rows are metrics, columns model and baselines on val and test."""
    metrics = result["metrics"]
    names = list(metrics.get("test", metrics.get("val", {})))
    tune = result.get("tune_metric")
    shown = [n for n in names if "/" not in n and n != "repeat_share"]
    extra = [n for n in (f"repeat/{tune}", f"explore/{tune}", "repeat_share") if n in names]
    rows = shown + extra
    columns: list[tuple[str, dict[str, Any]]] = []
    for split in ("val", "test"):
        columns.append((f"{result['ranker']} {split}", metrics.get(split, {})))
    for base, per in result.get("baselines", {}).items():
        for split in ("val", "test"):
            columns.append((f"{base} {split}", per.get(split, {})))
    header = ["metric"] + [c for c, _ in columns]
    body = [[n] + [_fmt(values.get(n)) if n in values else "-" for _, values in columns] for n in rows]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for r in body:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PQLRunError(f"{what} file '{path}' not found", code="E619") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PQLRunError(f"cannot read {what} file '{path}': {exc}", code="E619") from None


def _params(values: tuple[str, ...]) -> dict[str, Any] | None:
    return parse_set_options(values) if values else None


@click.command("run")
@query_arg
@inline_opt
@graph_opt
@data_opt
@set_opt
@click.option("--out", "out", required=True, metavar="DIR",
              help="Output folder (refused if it exists, unless --overwrite).")
@click.option("--ranker", default="gbdt", show_default=True, help="popularity, history, gbdt, torch or a plugin.")
@click.option("--anchor", "anchor", metavar="T", help="Prediction anchor time (default: the latest target timestamp).")
@click.option("--candidates", type=click.Choice(["all", "history"]), default="all", show_default=True,
              help="Link prediction: rank every valid item, or only those the entity had before.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--overwrite", is_flag=True, help="Replace the outputs of an existing --out folder.")
@click.option("--post-sql", "post_sql", metavar="FILE", help="SQL whose final SELECT replaces PREDICTIONS.")
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="parquet", show_default=True)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Ranker parameter (repeatable; no tuning).")
def run_cmd(query_file, inline, graph, data, set_values, out, ranker, anchor, candidates, seed, overwrite, post_sql,
            fmt, params) -> None:
    """Train, evaluate against baselines and predict; write the run folder; print the metrics."""
    ref: list[QueryInput | None] = [None]

    def body() -> int:
        from pql.jobs import run

        q = ref[0] = read_query(query_file, inline)
        g = resolve_graph(graph, data, q)
        options = parse_set_options(set_values)
        sql_text = _read_text(post_sql, "post-sql") if post_sql else None
        with progress_reporter("pql run") as progress:
            result = run(q.text, g, out_dir=out, ranker=ranker, seed=seed, anchor_time=anchor, candidates=candidates,
                         overwrite=overwrite, progress=progress, ranker_params=_params(params), output_format=fmt,
                         post_sql=sql_text, **options)
            from pql.report import write_report  # DIR/report.html, after the run folder is written
            result.files.append(write_report(out, result))
        _emit_warnings(result.warnings, q.text, q.filename)
        click.echo(metrics_report(result.metrics_json()))
        info(f"wrote {out}: " + ", ".join(p.name for p in result.files))
        return EXIT_OK

    run_guarded(body, ref)


@click.command("predict")
@click.option("--model", "model", required=True, metavar="DIR", help="A run folder (or its model/ folder).")
@click.option("--anchor", "anchor", metavar="T", help="Prediction anchor time.")
@click.option("--out", "out", metavar="DIR", help="Write the predictions here (default: a preview on stdout).")
@graph_opt
@click.option("--candidates", type=click.Choice(["all", "history"]), default=None)
@click.option("--overwrite", is_flag=True, help="Replace the outputs of an existing --out folder.")
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="parquet", show_default=True)
@click.option("--limit", default=20, show_default=True, help="Rows in the stdout preview.")
@set_opt
def predict_cmd(model, anchor, out, graph, candidates, overwrite, fmt, limit, set_values) -> None:
    """Score again with a saved model folder, without retraining."""
    ref: list[QueryInput | None] = [None]

    def body() -> int:
        from pql.jobs import predict
        from pql.output import preview_table

        with progress_reporter("pql predict") as progress:
            result = predict(model, anchor_time=anchor, out_dir=out, overwrite=overwrite, graph=graph,
                             candidates=candidates, output_format=fmt, progress=progress,
                             **parse_set_options(set_values))
        _emit_warnings(result.warnings, None, "query.pql")
        if out is None:
            click.echo(preview_table(result.predictions, limit))
        else:
            info(f"wrote {out}: " + ", ".join(p.name for p in result.files))
        return EXIT_OK

    run_guarded(body, ref)


@click.command("sql")
@click.argument("text", metavar="SQL")
@click.option("--run", "run_dir", required=True, metavar="DIR", help="A finished run folder.")
@graph_opt
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text", show_default=True)
@click.option("--limit", default=50, show_default=True, help="Rows shown with --format text.")
def sql_cmd(text, run_dir, graph, fmt, limit) -> None:
    """Run SQL over a run folder: PREDICTIONS, TRAINING_TABLE, METRICS, EMBEDDINGS and the graph tables."""
    ref: list[QueryInput | None] = [None]

    def body() -> int:
        from pql.output import preview_table
        from pql.session import Session

        sql_text = _read_text(text[1:], "SQL") if text.startswith("@") else text
        with Session.from_run_dir(run_dir, graph=graph) as session:
            table = session.sql(sql_text)
        if fmt == "csv":
            import io

            import pyarrow.csv as pacsv

            from pql.output import _csv_ready

            buf = io.BytesIO()
            pacsv.write_csv(_csv_ready(table), buf)
            click.echo(buf.getvalue().decode("utf-8"), nl=False)
        elif fmt == "json":
            click.echo(json.dumps(table.to_pylist(), indent=2, default=str))
        else:
            click.echo(preview_table(table, limit))
        return EXIT_OK

    run_guarded(body, ref)


def register(main: click.Group) -> None:
    main.add_command(run_cmd)
    main.add_command(predict_cmd)
    main.add_command(sql_cmd)
