"""Load the query corpus under ``tests/corpus/`` (used by the tests and the benchmarks).

File format: blocks separated by blank lines, one query per block. A block's leading
``-- expect: …`` line gives the expectation: a task type for valid files
(``-- expect: regression``), or one or more ``CODE @ line:col`` items separated by ``;`` for
invalid files (``-- expect: E102 @ 1:13``), positions relative to the query text that follows.
Blocks without an expect line (file headers) are skipped. The schema comes from the file name:
``*_reference.pql`` uses ``reference_graph()``, ``*_marketplace.pql`` ``marketplace_graph()``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pql.graph import Graph
from tests.schemas import marketplace_graph, reference_graph

__all__ = ["CORPUS_DIR", "CorpusQuery", "load_file", "load_corpus", "valid_queries", "invalid_queries", "graph_for"]

CORPUS_DIR = Path(__file__).parent / "corpus"
_EXPECT = re.compile(r"--\s*expect:\s*(.*?)\s*$")
_ERROR = re.compile(r"(E\d{3})\s*@\s*(\d+):(\d+)")
_GRAPHS = {"reference": reference_graph, "marketplace": marketplace_graph}


@dataclass(frozen=True)
class CorpusQuery:
    file: str
    line: int  # line of the file where the query text starts
    text: str
    schema: str  # "reference" | "marketplace"
    task_type: str | None = None  # valid queries
    errors: tuple[tuple[str, int, int], ...] = ()  # invalid queries: (code, line, column)

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def _blocks(lines: list[str]):
    start = None
    for i, line in enumerate(lines + [""]):
        if line.strip() and start is None:
            start = i
        elif not line.strip() and start is not None:
            yield start, lines[start:i]
            start = None


def load_file(path: Path) -> list[CorpusQuery]:
    schema = path.stem.rsplit("_", 1)[-1]
    if schema not in _GRAPHS:
        raise ValueError(f"{path.name}: cannot tell the schema from the file name")
    out = []
    for start, block in _blocks(path.read_text(encoding="utf-8").splitlines()):
        m = _EXPECT.match(block[0])
        if m is None:
            continue
        spec = m.group(1)
        text = "\n".join(block[1:])
        errors = tuple((code, int(ln), int(col)) for code, ln, col in _ERROR.findall(spec))
        if path.stem.startswith("invalid"):
            if not errors:
                raise ValueError(f"{path.name}:{start + 1}: expected 'CODE @ line:col'")
            out.append(CorpusQuery(path.name, start + 2, text, schema, errors=errors))
        else:
            out.append(CorpusQuery(path.name, start + 2, text, schema, task_type=spec))
    return out


def load_corpus(prefix: str = "") -> list[CorpusQuery]:
    return [q for p in sorted(CORPUS_DIR.glob(f"{prefix}*.pql")) for q in load_file(p)]


def valid_queries() -> list[CorpusQuery]:
    return load_corpus("valid")


def invalid_queries() -> list[CorpusQuery]:
    return load_corpus("invalid")


_CACHE: dict[str, Graph] = {}


def graph_for(query: CorpusQuery) -> Graph:
    """The (shared, read-only) graph of the query's schema."""
    if query.schema not in _CACHE:
        _CACHE[query.schema] = _GRAPHS[query.schema]()
    return _CACHE[query.schema]
