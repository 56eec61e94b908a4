"""Quality and speed of `pql run` on The Complete Journey, against baselines in the same run.

Prints tables of figures (never pass/fail):

* **buy it again** (the flagship query, ``examples/buy_it_again/buy_it_again.pql``): for each
  ranker, test MAP@10 and recall@50 next to the ``history`` baseline of the same run and the
  relative lift; the wall time of the whole ``pql run`` and its peak memory.
* **churn** (``churn.pql``): test AUROC of gbdt against the majority and last-label baselines.
* **ltv** (``ltv.pql``): test MAE of gbdt against the training-mean and last-value baselines.

Every ``pql run`` is a child process, so its wall time is end to end (start-up, loading, features,
training, evaluation, prediction, writing, the HTML report) and its CPU seconds and peak resident
memory (ru_utime + ru_stime and ru_maxrss from wait4) are its own; on a shared machine the CPU
seconds are the steadier figure. Targets of issue 4: the best ranker at least 10% above ``history`` on MAP@10 and
recall@50 (aim 20%), churn AUROC and LTV MAE better than their baselines, the flagship run under
120 s.

    python examples/buy_it_again/prepare.py          # once: writes examples/buy_it_again/data/
    python benchmarks/bench_quality.py               # all rankers and both node tasks
    python benchmarks/bench_quality.py --rankers gbdt,history --skip-node
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE = ROOT / "examples" / "buy_it_again"
TARGET_SECONDS = 120.0


@dataclass
class Run:
    name: str
    seconds: float
    cpu: float  # user + system seconds of the child (steadier than wall time on a shared machine)
    peak_mb: float
    meta: dict[str, Any] | None
    error: str | None = None

    def test(self, metric: str, who: str | None = None) -> float | None:
        if self.meta is None:
            return None
        per = self.meta["metrics"] if who is None else self.meta["baselines"].get(who, {})
        return per.get("test", {}).get(metric)


def pql_run(query: Path, graph: Path, out: Path, ranker: str, seed: int, extra: list[str]) -> Run:
    """One `pql run` in a child process: wall time, peak RSS (wait4) and metrics.json."""
    cmd = [sys.executable, "-c", "from pql.cli import main; main()", "-q", "run", str(query), "--graph", str(graph),
           "--out", str(out),
           "--ranker", ranker, "--seed", str(seed), "--overwrite", *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak, cpu = usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        return Run(ranker, seconds, cpu, peak, None, stderr.strip().splitlines()[0] if stderr.strip() else "failed")
    return Run(ranker, seconds, cpu, peak, json.loads((out / "metrics.json").read_text()))


def _f(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _lift(model: float | None, base: float | None, lower_is_better: bool = False) -> str:
    if model is None or base is None or base == 0:
        return "n/a"
    rel = (base - model) / base if lower_is_better else (model - base) / base
    return f"{rel:+.1%}"


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def bench_ranking(graph: Path, rankers: list[str], seed: int, work: Path) -> list[Run]:
    runs = [pql_run(EXAMPLE / "buy_it_again.pql", graph, work / f"bia-{r}", r, seed, []) for r in rankers]
    print("\n## buy it again (flagship query), test split; lift relative to the history baseline of the same run")
    rows = []
    for r in runs:
        if r.meta is None:
            rows.append([r.name, "error", r.error or "", "", "", "", "", _f(r.seconds, 1), _f(r.cpu, 1),
                         _f(r.peak_mb, 0)])
            continue
        m10, r50 = r.test("map@10"), r.test("recall@50")
        h10, h50 = r.test("map@10", "history"), r.test("recall@50", "history")
        rows.append([r.name, _f(m10), _f(r50), _f(h10), _f(h50), _lift(m10, h10), _lift(r50, h50),
                     _f(r.seconds, 1), _f(r.cpu, 1), _f(r.peak_mb, 0)])
    print_table(["ranker", "MAP@10", "recall@50", "history MAP@10", "history recall@50", "lift MAP@10",
                 "lift recall@50", "wall s", "cpu s", "peak MB"], rows)
    ok = [r for r in runs if r.meta is not None]
    if ok:
        best = max(ok, key=lambda r: r.test("map@10") or 0.0)
        first = ok[0].meta
        print(f"\nbest ranker by MAP@10: {best.name}; repeat share of the test truth "
              f"{_f(first['metrics']['test'].get('repeat_share'), 3)}; candidate recall (val) "
              f"{_f((first.get('candidate_recall') or {}).get('val'), 3)}")
        for r in ok:
            t = r.meta.get("timings", {})
            stages = ", ".join(f"{k} {v:.1f}s" for k, v in t.items() if k != "total")
            print(f"  {r.name}: wall {r.seconds:.1f}s, cpu {r.cpu:.1f}s (target < {TARGET_SECONDS:.0f}s wall: "
                  f"{'yes' if r.seconds < TARGET_SECONDS else 'NO'}); in-process stages: {stages}")
    return runs


def bench_node(graph: Path, seed: int, work: Path) -> None:
    print("\n## churn and ltv (gbdt), test split, against the baselines of the same run")
    rows = []
    for name, metric, lower in (("churn", "auroc", False), ("ltv", "mae", True)):
        r = pql_run(EXAMPLE / f"{name}.pql", graph, work / name, "gbdt", seed, [])
        if r.meta is None:
            rows.append([name, metric, "error", r.error or "", "", "", "", _f(r.seconds, 1), _f(r.cpu, 1),
                         _f(r.peak_mb, 0)])
            continue
        bases = list(r.meta["baselines"])
        b1, b2 = (bases + [None, None])[:2]
        v, v1, v2 = r.test(metric), r.test(metric, b1), r.test(metric, b2)
        rows.append([name, metric, _f(v), f"{b1} {_f(v1)}", f"{b2} {_f(v2)}", _lift(v, v1, lower), _lift(v, v2, lower),
                     _f(r.seconds, 1), _f(r.cpu, 1), _f(r.peak_mb, 0)])
    print_table(["query", "metric", "gbdt", "baseline 1", "baseline 2", "vs 1", "vs 2", "wall s", "cpu s", "peak MB"],
                rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graph", default=str(EXAMPLE / "graph.toml"))
    ap.add_argument("--rankers", default="gbdt,torch,history,popularity")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-node", action="store_true", help="Only the buy-it-again part.")
    ap.add_argument("--keep", metavar="DIR", help="Keep the run folders here (default: a temporary folder).")
    args = ap.parse_args()
    graph = Path(args.graph)
    if not (EXAMPLE / "data" / "transactions.parquet").is_file() and graph == EXAMPLE / "graph.toml":
        sys.exit("Complete Journey data missing: run python examples/buy_it_again/prepare.py first")
    print(f"pql run on {graph} (cpus: {os.cpu_count()}, seed {args.seed})")
    with tempfile.TemporaryDirectory(prefix="pql-bench-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        bench_ranking(graph, [r.strip() for r in args.rankers.split(",") if r.strip()], args.seed, work)
        if not args.skip_node:
            bench_node(graph, args.seed, work)


if __name__ == "__main__":
    main()
