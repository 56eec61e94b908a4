"""DIR/report.html: a self-contained page describing a training run.

Read from the run folder (metrics.json, the training table, the saved model): the model's metrics
against its baselines, the metric per held-out anchor, and the task's plots (precision/recall@k for
ranking, calibration and ROC for binary, predicted vs actual for regression and forecasting, feature
importances when the ranker gives them). The run keeps no scored rows for the val/test anchors, so
the report scores them again with the saved model (``pql.jobs.predict`` at each held-out anchor) and
joins the scores to the training table's labels. Plots are PNG images embedded as base64; all text is
HTML-escaped. The file is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from pql import metrics as M

__all__ = ["write_report", "render_report", "REPORT_FILE"]

REPORT_FILE = "report.html"
HELD_OUT = ("val", "test")
RANKING = ("temporal_link_prediction", "static_link_prediction")
REGRESSION = ("regression", "forecasting")


@dataclass
class Scored:
    """Held-out rows scored again: per anchor, the split and what the metrics need."""

    split: dict[dt.datetime, str] = field(default_factory=dict)
    y: dict[dt.datetime, list[Any]] = field(default_factory=dict)       # truths (sets for ranking)
    p: dict[dt.datetime, list[Any]] = field(default_factory=dict)       # scores (lists for ranking)


# -- reading the run folder ---------------------------------------------------------------------------


def _read_table(run_dir: Path, name: str) -> pa.Table | None:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if (run_dir / f"{name}.parquet").exists():
        return pq.read_table(run_dir / f"{name}.parquet")
    if (run_dir / f"{name}.csv").exists():
        return pcsv.read_csv(run_dir / f"{name}.csv")
    if (run_dir / "outputs.duckdb").exists():
        import duckdb
        from sqlglot import exp

        con = duckdb.connect(str(run_dir / "outputs.duckdb"), read_only=True)
        try:
            sql = exp.select("*").from_(exp.Table(this=exp.to_identifier(name.upper(), quoted=True)))
            return con.execute(sql.sql(dialect="duckdb")).arrow()
        except duckdb.Error:
            return None
        finally:
            con.close()
    return None


def _rows_by_anchor(table: pa.Table, splits: tuple[str, ...]) -> dict[dt.datetime, list[dict[str, Any]]]:
    out: dict[dt.datetime, list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        if row.get("SPLIT") in splits and row.get("ANCHOR_TIMESTAMP") is not None:
            out.setdefault(row["ANCHOR_TIMESTAMP"], []).append(row)
    return out


def _score_held_out(run_dir: Path, task: str, training: pa.Table, result: Any) -> Scored:
    """Predict again at each val/test anchor with the saved model; join to the labels."""
    from pql.jobs import predict

    scored = Scored()
    graph = getattr(result, "graph", None)
    db = getattr(result, "database", None)
    held: dict[Any, list[dict[str, Any]]] = {}  # a finished run's own val/test scores: no second scoring
    for table in (getattr(result, "held_out", None) or {}).values():
        for r in table.to_pylist():
            held.setdefault(r["ANCHOR_TIMESTAMP"], []).append(r)
    for anchor, rows in sorted(_rows_by_anchor(training, HELD_OUT).items()):
        if held:
            preds = held.get(anchor, [])
        else:
            preds = predict(run_dir / "model", anchor_time=anchor, graph=graph, database=db).predictions.to_pylist()
        join = JOINS.get(task)
        if join is None:
            continue
        y, p = join(rows, preds)
        if y:
            scored.split[anchor], scored.y[anchor], scored.p[anchor] = rows[0]["SPLIT"], y, p
    return scored


def _join_binary(rows: list[dict], preds: list[dict]) -> tuple[list, list]:
    prob = {r["ENTITY"]: r["True_PROB"] for r in preds}
    keep = [r for r in rows if r["ENTITY"] in prob and r["TARGET"] is not None]
    return [bool(r["TARGET"]) for r in keep], [prob[r["ENTITY"]] for r in keep]


def _join_regression(rows: list[dict], preds: list[dict]) -> tuple[list, list]:
    pred = {(r["ENTITY"], r["ANCHOR_TIMESTAMP"]): r["TARGET_PRED"] for r in preds}
    by_entity = {r["ENTITY"]: r["TARGET_PRED"] for r in preds}
    y, p = [], []
    for r in rows:
        v = pred.get((r["ENTITY"], r["ANCHOR_TIMESTAMP"]), by_entity.get(r["ENTITY"]))
        if v is not None and r["TARGET"] is not None:
            y.append(float(r["TARGET"]))
            p.append(float(v))
    return y, p


def _join_ranking(rows: list[dict], preds: list[dict]) -> tuple[list, list]:
    lists: dict[Any, list[tuple[int, Any]]] = {}
    for r in preds:
        lists.setdefault(r["ENTITY"], []).append((r["RANK"], r["CLASS"]))
    y, p = [], []
    for r in rows:
        truth = frozenset(r["TARGET"] or ())
        if truth and r["ENTITY"] in lists:
            y.append(truth)
            p.append([c for _, c in sorted(lists[r["ENTITY"]], key=lambda t: t[0])])
    return y, p


def _join_multiclass(rows: list[dict], preds: list[dict]) -> tuple[list, list]:
    top = {r["ENTITY"]: r["CLASS"] for r in preds if r.get("PREDICTED")}
    keep = [r for r in rows if r["ENTITY"] in top and r["TARGET"] is not None]
    return [r["TARGET"] for r in keep], [top[r["ENTITY"]] for r in keep]


JOINS: dict[str, Callable[[list[dict], list[dict]], tuple[list, list]]] = {
    "binary_classification": _join_binary,
    "regression": _join_regression,
    "forecasting": _join_regression,
    "temporal_link_prediction": _join_ranking,
    "static_link_prediction": _join_ranking,
    "multiclass_classification": _join_multiclass,
}


# -- metrics per anchor -------------------------------------------------------------------------------


def _anchor_metric(task: str, k: int | None) -> tuple[str, Callable[[list, list], float | None]]:
    if task == "binary_classification":
        return "auroc", M.auroc
    if task in REGRESSION:
        return "mae", M.mae
    if task in RANKING:
        kk = k or 10
        return f"map@{kk}", lambda y, p: M.ranking_metrics([M.RankingRow(pp, yy) for yy, pp in zip(y, p)],
                                                           kk, (kk,))[f"map@{kk}"].value
    return "accuracy", lambda y, p: float(np.mean([a == b for a, b in zip(y, p)])) if y else None


# -- plots ---------------------------------------------------------------------------------------------


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=90)
    return fig, ax


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plot_per_anchor(name: str, points: list[tuple[dt.datetime, str, float]]) -> str:
    fig, ax = _figure()
    ax.plot([a for a, _, _ in points], [v for _, _, v in points], color="grey", linewidth=1)
    for split, marker in (("val", "o"), ("test", "s")):
        pts = [(a, v) for a, s, v in points if s == split]
        if pts:
            ax.plot([a for a, _ in pts], [v for _, v in pts], marker=marker, linestyle="none", label=split)
    ax.set_xlabel("anchor time")
    ax.set_ylabel(name)
    ax.set_title(f"{name} per anchor")
    ax.legend()
    fig.autofmt_xdate()
    return _png(fig)


def _plot_pr_at_k(scored: Scored, split: str) -> str:
    ys = [y for a, s in scored.split.items() if s == split for y in scored.y[a]]
    ps = [p for a, s in scored.split.items() if s == split for p in scored.p[a]]
    kmax = max(len(p) for p in ps)
    ks = np.arange(1, kmax + 1)
    prec, rec = np.zeros(kmax), np.zeros(kmax)
    for truth, plist in zip(ys, ps):
        hits = np.cumsum([item in truth for item in (list(plist) + [None] * kmax)[:kmax]])
        prec += hits / ks
        rec += hits / len(truth)
    fig, ax = _figure()
    ax.plot(ks, prec / len(ys), label="precision@k")
    ax.plot(ks, rec / len(ys), label="recall@k")
    ax.set_xlabel("k")
    ax.set_ylabel("value")
    ax.set_title(f"precision and recall at k ({split}, {len(ys)} rows)")
    ax.legend()
    return _png(fig)


def _pooled(scored: Scored, split: str) -> tuple[np.ndarray, np.ndarray]:
    y = [v for a, s in scored.split.items() if s == split for v in scored.y[a]]
    p = [v for a, s in scored.split.items() if s == split for v in scored.p[a]]
    return np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)


def _plot_roc(scored: Scored, split: str) -> str:
    y, p = _pooled(scored, split)
    order = np.argsort(-p, kind="mergesort")
    tp = np.concatenate([[0], np.cumsum(y[order])])
    fp = np.concatenate([[0], np.cumsum(1 - y[order])])
    fig, ax = _figure()
    ax.plot(fp / max(fp[-1], 1), tp / max(tp[-1], 1), label=f"model (AUROC {M.auroc(y, p) or float('nan'):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC ({split})")
    ax.legend()
    return _png(fig)


def _plot_calibration(scored: Scored, split: str, bins: int = 10) -> str:
    y, p = _pooled(scored, split)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    mean_p = [p[idx == b].mean() for b in range(bins) if (idx == b).any()]
    frac = [y[idx == b].mean() for b in range(bins) if (idx == b).any()]
    fig, ax = _figure()
    ax.plot(mean_p, frac, marker="o", label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("fraction positive")
    ax.set_title(f"calibration ({split}, {bins} bins)")
    ax.legend()
    return _png(fig)


def _plot_scatter(scored: Scored, split: str) -> str:
    y, p = _pooled(scored, split)
    fig, ax = _figure()
    ax.scatter(y, p, s=8, alpha=0.5)
    lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], linestyle="--", color="grey")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(f"predicted vs actual ({split}, {len(y)} rows)")
    return _png(fig)


def _plot_importances(imp: dict[str, float], top: int = 20) -> str:
    items = sorted(imp.items(), key=lambda kv: -abs(kv[1]))[:top][::-1]
    fig, ax = _figure()
    fig.set_size_inches(7, max(3, 0.28 * len(items) + 1))
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set_xlabel("importance")
    ax.set_title(f"feature importances (top {len(items)})")
    ax.tick_params(axis="y", labelsize=7)
    return _png(fig)


TASK_PLOTS: dict[str, list[tuple[str, Callable[[Scored, str], str]]]] = {
    "binary_classification": [("ROC", _plot_roc), ("Calibration", _plot_calibration)],
    "regression": [("Predicted vs actual", _plot_scatter)],
    "forecasting": [("Predicted vs actual", _plot_scatter)],
    "temporal_link_prediction": [("Precision and recall at k", _plot_pr_at_k)],
    "static_link_prediction": [("Precision and recall at k", _plot_pr_at_k)],
}


# -- HTML ----------------------------------------------------------------------------------------------

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}pre{background:#f6f6f6;padding:0.6em}
img{display:block;margin:0.5em 0 1.5em;max-width:100%}.note{color:#666;font-size:0.9em}"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.4f}" if isinstance(v, float) else _e(v)


def _table(head: list[str], rows: list[list[Any]]) -> str:
    h = "".join(f"<th>{_e(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _img(title: str, b64: str) -> str:
    return f'<img alt="{_e(title)}" src="data:image/png;base64,{b64}">'


def _metrics_section(mj: dict[str, Any]) -> str:
    """One table: each metric of the model and of every baseline on val and test (and train when
    scored); metrics on the repeat/explore subsets go in a folded second table."""
    model = mj.get("metrics", {})
    baselines = mj.get("baselines", {})
    splits = [s for s in ("val", "test", "train") if s in model]
    who = [(str(mj.get("ranker", "model")), model)] + [(b, per) for b, per in baselines.items()]
    head = ["metric"] + [f"{name} {s}" for name, per in who for s in splits if s in per]
    names = list(dict.fromkeys(n for s in splits for n in model[s]))

    def rows(keep: Callable[[str], bool]) -> list[list[Any]]:
        return [[n] + [per[s].get(n) for _, per in who for s in splits if s in per] for n in names if keep(n)]

    out = ["<h2 id=\"metrics\">Metrics against baselines</h2>", _table(head, rows(lambda n: "/" not in n))]
    sub = rows(lambda n: "/" in n)
    if sub:
        out.append("<details><summary>metrics on the repeat and explore subsets</summary>"
                   + _table(head, sub) + "</details>")
    return "\n".join(out)


def _per_anchor_section(task: str, k: int | None, scored: Scored) -> str:
    name, fn = _anchor_metric(task, k)
    points = [(a, scored.split[a], fn(scored.y[a], scored.p[a])) for a in sorted(scored.split)]
    rows = [[str(a), s, len(scored.y[a]), v] for a, s, v in points]
    out = ["<h2 id=\"per-anchor\">Metric per anchor</h2>",
           "<p class=\"note\">The run keeps no scored rows for the held-out anchors, so the saved model scored "
           "each val and test anchor again; train anchors are in-sample and not shown."
           + (" Forecasting: each anchor's row is the first timeframe predicted from that anchor, so these "
              "values can differ from the run's metrics." if task == "forecasting" else "") + "</p>",
           _table(["anchor", "split", "rows", name], rows)]
    plotted = [(a, s, v) for a, s, v in points if v is not None]
    if plotted:
        out.append(_img(f"{name} per anchor", _plot_per_anchor(name, plotted)))
    return "\n".join(out)


def _plots_section(task: str, scored: Scored) -> str:
    out = []
    split = "test" if "test" in scored.split.values() else "val"
    for title, plot in TASK_PLOTS.get(task, []):
        if split in scored.split.values():
            out.append(f"<h3>{_e(title)}</h3>" + _img(title, plot(scored, split)))
    return "<h2 id=\"plots\">Plots</h2>\n" + "\n".join(out) if out else ""


def _importances(run_dir: Path, result: Any) -> dict[str, float] | None:
    model = getattr(result, "model", None)
    if model is None and (run_dir / "model").exists():
        from pql.jobs.modeldir import load_model_dir

        _, model, _ = load_model_dir(run_dir / "model", graph=getattr(result, "graph", None))
    fn = getattr(model, "feature_importances", None)
    return fn() if callable(fn) else None


def _header(mj: dict[str, Any]) -> str:
    facts = [["task type", mj.get("task_type")], ["ranker", mj.get("ranker")], ["split", mj.get("split")],
             ["prediction anchor", mj.get("prediction_anchor")], ["prediction rows", mj.get("prediction_rows")],
             ["seed", mj.get("seed")]]
    query = f"<pre>{_e(mj['query'])}</pre>" if mj.get("query") else ""
    return "<h1>pql run report</h1>\n" + query + _table(["", "value"], [f for f in facts if f[1] is not None])


def render_report(run_dir: Path, result: Any = None) -> str:
    """The report page for the run folder ``run_dir`` (``result``: the in-memory RunResult, optional)."""
    run_dir = Path(run_dir)
    mj = json.loads((run_dir / "metrics.json").read_text())
    task = str(mj.get("task_type"))
    k = ((mj.get("task") or {}).get("k")) or _k_from(mj)
    body = [_header(mj), _metrics_section(mj)]
    training = _read_table(run_dir, "training_table")
    missing = _why_not_scored(run_dir, task, training)
    scored = _score_held_out(run_dir, task, training, result) if missing is None else Scored()
    if scored.split:
        body += [_per_anchor_section(task, k, scored), _plots_section(task, scored)]
    else:
        body.append(f"<p class=\"note\">Per-anchor metrics and plots are not available: "
                    f"{_e(missing or 'no held-out row could be scored')}.</p>")
    imp = _importances(run_dir, result)
    if imp:
        body.append("<h2 id=\"importances\">Feature importances</h2>" + _img("feature importances",
                                                                             _plot_importances(imp)))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pql run report</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(b for b in body if b) + "\n</body></html>\n")


def _why_not_scored(run_dir: Path, task: str, training: pa.Table | None) -> str | None:
    if training is None:
        return "the folder holds no training table"
    if not (run_dir / "model").exists():
        return "the folder holds no saved model"
    if task not in JOINS:
        return f"the report does not score {task} tasks again"
    return None


def _k_from(mj: dict[str, Any]) -> int | None:
    for name in (mj.get("metrics", {}).get("test") or {}):
        if name.startswith("map@"):
            return int(name.split("@")[1])
    return None


def write_report(run_dir: Path, result: Any = None) -> Path:
    """Write ``run_dir/report.html`` atomically; returns its path."""
    run_dir = Path(run_dir)
    page = render_report(run_dir, result)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=run_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        target = run_dir / REPORT_FILE
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
