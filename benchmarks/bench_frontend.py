"""Front-end latency: parse + validate per query over the test corpus (not a timed test).

Prints the corpus size, the median and p99 latency of parse + validate per query, and, measured
in the same run for comparison, parse alone and sqlglot parsing a SELECT of the same length.
Target (issue 2): median parse + validate under 1 ms on the 2-core reference machine.

    python benchmarks/bench_frontend.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pql  # noqa: E402
from pql.errors import PQLError  # noqa: E402
from tests.corpus_loader import graph_for, load_corpus  # noqa: E402


def _time_each(queries, fn, repeat: int) -> list[float]:
    """Per-query latency in ms: for each query, the median of `repeat` timed calls."""
    per_query = []
    for q in queries:
        samples = []
        for _ in range(repeat):
            t0 = time.perf_counter_ns()
            try:
                fn(q)
            except PQLError:
                pass
            samples.append((time.perf_counter_ns() - t0) / 1e6)
        per_query.append(statistics.median(samples))
    return per_query


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200, help="timed calls per query")
    args = ap.parse_args()

    corpus = load_corpus()
    graphs = {}
    for q in corpus:
        graphs.setdefault(q.schema, graph_for(q))
    import sqlglot

    # An external yardstick of the same size: sqlglot parsing a SELECT as long as the query.
    def sql_of(q) -> str:
        cols = ", ".join(f"c{i}" for i in range(max(1, len(q.text) // 8)))
        return f"SELECT {cols} FROM t WHERE a > 1"
    n_valid = sum(1 for q in corpus if q.task_type)
    print(f"corpus: {len(corpus)} queries ({n_valid} valid, {len(corpus) - n_valid} invalid), "
          f"{len(graphs)} schemas, {args.repeat} calls per query, python {sys.version.split()[0]}")

    for q in corpus:  # warm caches (grammar, per-graph look-ups)
        try:
            pql.validate(q.text, graphs[q.schema])
        except PQLError:
            pass
    gc.disable()
    try:
        full = _time_each(corpus, lambda q: pql.validate(q.text, graphs[q.schema]), args.repeat)
        parse_only = _time_each(corpus, lambda q: pql.parse(q.text), args.repeat)
        sqls = {q.id: sql_of(q) for q in corpus}
        sql_only = _time_each(corpus, lambda q: sqlglot.parse_one(sqls[q.id]), args.repeat)
    finally:
        gc.enable()

    rows = [("parse + validate", full), ("parse (AST)", parse_only), ("sqlglot SELECT (baseline)", sql_only)]
    print(f"{'stage':<28}{'median ms':>12}{'p99 ms':>10}{'max ms':>10}")
    for name, vals in rows:
        print(f"{name:<28}{statistics.median(vals):>12.4f}{_pct(vals, 99):>10.4f}{max(vals):>10.4f}")
    for name, vals in rows[1:]:
        print(f"ratio parse+validate / {name} (median): {statistics.median(full) / statistics.median(vals):.2f}x")
    verdict = "meets" if statistics.median(full) < 1.0 else "MISSES"
    print(f"target median < 1 ms: {verdict} ({statistics.median(full):.4f} ms)")


if __name__ == "__main__":
    main()
