"""``pql repl`` and ``pql`` alone: the click side of the REPL (no prompt_toolkit import until it runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["repl_cmd", "register_repl", "maybe_start_repl"]


@click.command("repl")
@click.option("--graph", "graph", metavar="PATH", help="graph.toml (or a folder holding one).")
@click.option("--data", "data", metavar="DIR", help="Infer the graph from a folder of data files.")
def repl_cmd(graph: str | None, data: str | None) -> None:
    """Interactive shell: queries with highlighting and completion, dot commands (.help).

    Without a terminal, reads statements from stdin and prints their results (exit 1 if any failed).
    """
    from pql.cli import run_guarded, resolve_graph

    def body() -> int:
        g = resolve_graph(graph, data, None)
        if sys.stdin.isatty() and sys.stdout.isatty():
            from .app import run_repl

            return run_repl(g)
        from .app import run_script

        return run_script(g, sys.stdin)

    run_guarded(body, [None])


def register_repl(main: click.Group) -> None:
    main.add_command(repl_cmd)


def maybe_start_repl(ctx: click.Context) -> None:
    """For the group callback when no subcommand is given: on a terminal with a graph.toml in the
    current folder start the REPL; otherwise show the help (on stderr, exit 2, as click does)."""
    if ctx.invoked_subcommand is not None:
        return
    if sys.stdin.isatty() and sys.stdout.isatty() and Path("graph.toml").is_file():
        ctx.invoke(repl_cmd, graph="graph.toml", data=None)
        return
    no_args = getattr(click.exceptions, "NoArgsIsHelpError", None)
    if no_args is not None:
        raise no_args(ctx)
    click.echo(ctx.get_help())
    ctx.exit(0)
