"""The interactive PQL shell (``pql repl``), built on prompt_toolkit.

A thin shell over the core API: ``scan`` (a forgiving tokenizer and the statement-complete test),
``highlight`` (the Lexer), ``completion`` (completion by position in the query), ``commands`` (the
dot-command registry), ``app`` (the prompt loop) and ``cli`` (the click command). prompt_toolkit is
imported only when the REPL starts, so ``pql`` itself stays quick to load.
"""

from __future__ import annotations

from typing import Any

from .cli import maybe_start_repl, register_repl, repl_cmd

__all__ = ["register_repl", "maybe_start_repl", "repl_cmd", "Repl", "run_repl", "run_script", "REGISTRY",
           "PQLCompleter", "PQLLexer"]

_LAZY = {"Repl": "app", "run_repl": "app", "run_script": "app", "REGISTRY": "commands",
         "PQLCompleter": "completion", "PQLLexer": "highlight"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
