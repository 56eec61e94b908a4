"""Background jobs (Kumo's ``non_blocking=True`` futures) and the per-graph DuckDB session.

:class:`Job` runs a function in a background thread and offers ``result()``, ``status()`` and
``done()`` like Kumo's ``TrainingTableJob`` / ``TrainingJob`` / ``BatchPredictionJob``. Every job
over a graph uses that graph's one :class:`pql.data.Database` under a lock, so jobs on one graph
run one at a time (a DuckDB connection serves one thread at a time) and jobs on different graphs
run side by side.
"""

from __future__ import annotations

import enum
import itertools
import threading
import uuid
import weakref
from concurrent.futures import Future
from typing import Any, Callable, Generic, TypeVar

from pql.errors import PQLError, PQLInternalError

__all__ = ["JobStatus", "Job", "resolve", "database_for", "forget_database", "new_job_id"]

T = TypeVar("T")


class JobStatus(str, enum.Enum):
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"

    def __str__(self) -> str:
        return self.value


_COUNTER = itertools.count(1)


def new_job_id(kind: str) -> str:
    """Kumo-style ids: ``trainingjob-…``, ``bp-job-…``, ``td-job-…``."""
    return f"{kind}-{next(_COUNTER):04d}-{uuid.uuid4().hex[:8]}"


class Job(Generic[T]):
    """A function running in a background thread; ``result()`` waits and returns its value or raises
    its error (a PQLError as is; anything else as E900)."""

    def __init__(self, kind: str, fn: Callable[[], T], *, job_id: str | None = None) -> None:
        self.job_id = job_id or new_job_id(kind)
        self.kind = kind
        self._future: Future[T] = Future()
        self._thread = threading.Thread(target=self._run, args=(fn,), name=f"pql-{self.job_id}", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], T]) -> None:
        self._future.set_running_or_notify_cancel()
        try:
            self._future.set_result(fn())
        except PQLError as e:
            self._future.set_exception(e)
        except Exception as e:  # a bug: keep the type and message, never a bare traceback
            self._future.set_exception(PQLInternalError(f"internal error, please report: {type(e).__name__}: {e}"))

    def status(self) -> JobStatus:
        if not self._future.done():
            return JobStatus.RUNNING
        return JobStatus.FAILED if self._future.exception() is not None else JobStatus.DONE

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> T:
        return self._future.result(timeout)

    attach = result  # Kumo's name for "wait and return the result"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(job_id={self.job_id!r}, status={self.status().value})"


def resolve(value: Any, expected: type, what: str, hint: str) -> Any:
    """A finished object from the object itself or a :class:`Job` producing it (waits for the job)."""
    from pql.errors import PQLRunError

    if isinstance(value, Job):
        value = value.result()
    if not isinstance(value, expected):
        raise PQLRunError(f"{what} must be a {expected.__name__} (or its non-blocking job), not "
                          f"{type(value).__name__}", code="E635", hints=[hint])
    return value


# -- one Database per graph ---------------------------------------------------------------------------
_DATABASES: "weakref.WeakKeyDictionary[Any, tuple[Any, threading.RLock]]" = weakref.WeakKeyDictionary()
_DB_LOCK = threading.Lock()


def database_for(graph: Any) -> tuple[Any, threading.RLock]:
    """The graph's Database (created on first use, with ``pql.init(threads=...)``) and its lock."""
    import duckdb

    from pql.data import Database

    from .config import settings

    with _DB_LOCK:
        entry = _DATABASES.get(graph)
        if entry is None:
            threads = settings().threads
            con = duckdb.connect(config={"threads": threads}) if threads else duckdb.connect()
            entry = (Database(graph, con), threading.RLock())
            _DATABASES[graph] = entry
        return entry


def forget_database(graph: Any) -> None:
    """Drop the cached Database (after the graph's edges or tables changed)."""
    with _DB_LOCK:
        _DATABASES.pop(graph, None)
