"""``pql.init(**settings)``: optional process-wide settings of the SDK (Kumo's ``kumoai.init``).

Settings: ``threads`` (DuckDB threads and the rankers' thread count; default: all cores),
``working_dir`` (where training jobs keep their run folders, so a ``training_job_id`` can be used
again later, also from another process; default: a temporary folder for this process) and
``progress`` (a callback ``(message, fraction)`` for long jobs; default: none).

``init`` also makes a script that stops on a :class:`~pql.errors.PQLError` print the rendered error
(code, message, source line with carets, hints) instead of a Python traceback, as the CLI does
(``PQL_DEBUG=1`` keeps the traceback). Other exceptions are left to the previous hook.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from pql.errors import PQLRunError, did_you_mean

__all__ = ["Settings", "init", "settings", "working_dir"]


@dataclass
class Settings:
    threads: int | None = None
    working_dir: Path | None = None
    progress: Callable[[str, float], None] | None = None


_SETTINGS = Settings()
_LOCK = threading.Lock()
_TEMP_DIR: Path | None = None


def _threads(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PQLRunError(f"threads = {value!r} is invalid: expected a whole number >= 1", code="E602")
    return value


def _working_dir(value: Any) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise PQLRunError(f"working_dir = {value!r} is invalid: expected a folder path", code="E602")
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise PQLRunError(f"working_dir = {str(value)!r} is invalid: it is a file, not a folder", code="E602")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PQLRunError(f"working_dir = {str(value)!r} is invalid: {e.strerror or e}", code="E602") from None
    return path.resolve()


def _progress(value: Any) -> Callable[[str, float], None] | None:
    if value is not None and not callable(value):
        raise PQLRunError(f"progress = {value!r} is invalid: expected a function (message, fraction)", code="E602")
    return value


_PARSERS = {"threads": _threads, "working_dir": _working_dir, "progress": _progress}


def _excepthook(previous: Any) -> Any:
    def hook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        from pql.errors import PQLError

        if isinstance(exc, PQLError) and not os.environ.get("PQL_DEBUG"):
            print(exc.render(getattr(exc, "pql_source", None)), file=sys.stderr)
        else:
            previous(exc_type, exc, tb)

    hook.pql_hook = True  # type: ignore[attr-defined]
    return hook


def init(**settings: Any) -> Settings:
    """Set SDK settings (all optional); unknown names are E601. Returns the settings in force."""
    names = [f.name for f in fields(Settings)]
    for name in settings:
        if name not in _PARSERS:
            dym, _ = did_you_mean(name, names)
            raise PQLRunError(f"unknown option '{name}'{dym}", code="E601",
                              hints=["pql.init takes " + ", ".join(names)])
    parsed = {name: _PARSERS[name](value) for name, value in settings.items()}
    with _LOCK:
        for name, value in parsed.items():
            setattr(_SETTINGS, name, value)
        if not getattr(sys.excepthook, "pql_hook", False):
            sys.excepthook = _excepthook(sys.excepthook)
    return _SETTINGS


def settings() -> Settings:
    return _SETTINGS


def working_dir() -> Path:
    """The folder for job folders: ``working_dir`` if set, else one temporary folder per process."""
    global _TEMP_DIR
    if _SETTINGS.working_dir is not None:
        return _SETTINGS.working_dir
    with _LOCK:
        if _TEMP_DIR is None:
            _TEMP_DIR = Path(tempfile.mkdtemp(prefix="pql-sdk-"))
            atexit.register(shutil.rmtree, _TEMP_DIR, True)
        return _TEMP_DIR
