"""Every PQL example in README.md and docs/*.md runs; the reference agrees with the spec.

Conventions for Markdown files (README and docs alike):

* A fenced block tagged ``pql`` holds one query that must validate against the graph named by the
  nearest ``<!-- graph: G -->`` comment above it in the same file. G is a path relative to the
  repository root (``examples/synthetic/graph.toml``) or ``reference`` / ``marketplace`` for the
  schemas in ``tests/schemas.py``.
* A block tagged ``pql-error`` holds one query and a line ``-- expect: E102`` (a PQL comment); it must
  fail with that code (parse or validation) against the same graph. ``-- expect: W104`` instead means
  the query validates with that warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import pql
from pql.errors import PQLError, PQLValidationError
from tests.schemas import marketplace_graph, reference_graph

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT.parent / "shared" / "PQL-SPEC.md"
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.S | re.M)
GRAPH_MARK = re.compile(r"<!--\s*graph:\s*(\S+)\s*-->")
EXPECT = re.compile(r"^\s*--\s*expect:\s*([EW]\d{3})\s*$", re.M)
CODE = re.compile(r"\b([EW]\d{3})\b")
NAMED_GRAPHS = {"reference": reference_graph, "marketplace": marketplace_graph}


@dataclass(frozen=True)
class Example:
    file: Path
    line: int
    kind: str          # "pql" or "pql-error"
    text: str
    graph: str | None

    @property
    def id(self) -> str:
        return f"{self.file.name}:{self.line}"


def examples(path: Path) -> list[Example]:
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        kind = m.group(1)
        if kind not in ("pql", "pql-error"):
            continue
        before = GRAPH_MARK.findall(text[:m.start()])
        out.append(Example(path, text.count("\n", 0, m.start()) + 1, kind, m.group(2),
                           before[-1] if before else None))
    return out


ALL = [ex for f in DOC_FILES if f.exists() for ex in examples(f)]
_graphs: dict[str, pql.Graph] = {}


def graph_of(ex: Example) -> pql.Graph:
    assert ex.graph, f"{ex.id}: no <!-- graph: ... --> comment above this ```{ex.kind} block"
    if ex.graph not in _graphs:
        _graphs[ex.graph] = NAMED_GRAPHS[ex.graph]() if ex.graph in NAMED_GRAPHS else pql.Graph.load(ROOT / ex.graph)
    return _graphs[ex.graph]


def test_docs_hold_examples():
    """The docs carry both kinds of examples (README's are counted once it marks its blocks)."""
    docs = [ex for ex in ALL if ex.file.parent.name == "docs"]
    assert sum(ex.kind == "pql" for ex in docs) >= 10
    assert sum(ex.kind == "pql-error" for ex in docs) >= 5


@pytest.mark.parametrize("ex", [e for e in ALL if e.kind == "pql"], ids=lambda e: e.id)
def test_valid_example(ex):
    vq = pql.validate(ex.text, graph_of(ex))
    assert vq.task_type is not None
    assert pql.parse(pql.format(vq.query)) == vq.query


@pytest.mark.parametrize("ex", [e for e in ALL if e.kind == "pql-error"], ids=lambda e: e.id)
def test_error_example(ex):
    codes = EXPECT.findall(ex.text)
    assert len(codes) == 1, f"{ex.id}: a pql-error block needs exactly one '-- expect: CODE' line"
    code = codes[0]
    graph = graph_of(ex)
    if code.startswith("W"):
        vq = pql.validate(ex.text, graph)
        assert code in {w.code for w in vq.warnings}, [w.code for w in vq.warnings]
        return
    with pytest.raises(PQLError) as info:
        pql.validate(ex.text, graph)
    err = info.value
    got = [e.code for e in err.errors] if isinstance(err, PQLValidationError) else [err.code]
    assert code in got, f"{ex.id}: expected {code}, got {got}: {err.message}"


# -- the reference against the spec ------------------------------------------------------------------


def _spec_codes() -> set[str]:
    text = SPEC.read_text(encoding="utf-8")
    return {c for c in CODE.findall(text)} | {f"W70{i}" for i in range(1, 7)}


def _raised_codes() -> set[str]:
    """Codes the implementation raises beyond the spec (run, SDK and CLI errors)."""
    found = set()
    for path in (ROOT / "pql").rglob("*.py"):
        found |= set(re.findall(r'code="([EW]\d{3})"', path.read_text(encoding="utf-8")))
    return found


REFERENCE = ROOT / "docs" / "reference.md"


@pytest.mark.skipif(not SPEC.exists(), reason="the spec is not next to the repository")
def test_reference_lists_every_spec_code():
    ref = set(CODE.findall(REFERENCE.read_text(encoding="utf-8")))
    missing = sorted(_spec_codes() - ref)
    assert not missing, f"codes in the spec but not in docs/reference.md: {missing}"


@pytest.mark.skipif(not SPEC.exists(), reason="the spec is not next to the repository")
def test_reference_codes_exist():
    ref = set(CODE.findall(REFERENCE.read_text(encoding="utf-8")))
    unknown = sorted(ref - _spec_codes() - _raised_codes())
    assert not unknown, f"codes in docs/reference.md that neither the spec nor pql defines: {unknown}"


def test_reference_lists_keywords():
    """Every aggregation, unit, operator, task type and reserved keyword is in the reference."""
    from pql.ast import AggFunc, TaskType, TimeUnit

    text = REFERENCE.read_text(encoding="utf-8")
    words = [f"`{a.name}`" for a in AggFunc] + [f"`{u.name.lower()}`" for u in TimeUnit]
    words += [f"`{t.value}`" for t in TaskType]
    words += [f"`{op}`" for op in ("=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN", "CONTAINS", "NOT CONTAINS",
                                   "STARTS WITH", "ENDS WITH", "LIKE", "NOT LIKE", "IS NULL", "IS NOT NULL")]
    words += [f"`{k}`" for k in ("PREDICT", "FOR EACH", "WHERE", "ASSUMING", "RANK TOP", "CLASSIFY",
                                 "FORECAST", "TIMEFRAMES", "AND", "OR", "NOT", "-INF")]
    missing = [w for w in words if w not in text]
    assert not missing, missing


def test_sdk_table_covers_the_sdk():
    """docs/sdk.md names every public class of pql.sdk and every public method they define."""
    import inspect

    import pql.sdk as sdk

    text = (ROOT / "docs" / "sdk.md").read_text(encoding="utf-8")
    missing = []
    for name in sdk.__all__:
        obj = getattr(sdk, name)
        if name not in text:
            missing.append(name)
        if inspect.isclass(obj):
            for attr, value in vars(obj).items():
                if not attr.startswith("_") and (callable(value) or isinstance(value, (property, classmethod))) \
                        and f".{attr}" not in text:
                    missing.append(f"{name}.{attr}")
    assert not missing, missing
