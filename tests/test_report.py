"""`pql run` writes DIR/report.html: a well-formed, self-contained page with the task's sections and
plots; every embedded image is a real PNG; the page renders in headless Chromium when installed."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from pql.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "synthetic"
GRAPH = str(EXAMPLES / "graph.toml")
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
VOID = {"meta", "img", "br", "hr", "link", "input"}

# query -> (sections that must be present, alt texts of the images that must be present, per-anchor metric)
CASES = {
    "churn": ({"metrics", "per-anchor", "plots", "importances"},
              {"auroc per anchor", "ROC", "Calibration", "feature importances"}, "auroc"),
    "ltv": ({"metrics", "per-anchor", "plots", "importances"},
            {"mae per anchor", "Predicted vs actual", "feature importances"}, "mae"),
    "buy_it_again": ({"metrics", "per-anchor", "plots", "importances"},
                     {"map@50 per anchor", "Precision and recall at k", "feature importances"}, "map@50"),
}


@pytest.fixture(autouse=True)
def _one_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    out = {}
    for name in CASES:
        d = root / name
        r = CliRunner().invoke(main, ["run", str(EXAMPLES / f"{name}.pql"), "--graph", GRAPH, "--out", str(d),
                                      "--param", "max_iter=15", "--set", "max_anchors=4"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        out[name] = (d, r)
    return out


class Page(HTMLParser):
    """Checks nesting and collects ids, images, table cells and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: set[str] = set()
        self.images: list[dict[str, str]] = []
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.images.append(a)
        if tag in ("script", "link") or (tag == "img" and not a.get("src", "").startswith("data:")):
            self.external.append(tag)
        if tag == "tr":
            self.rows.append([])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self.stack and self.stack[-1] in ("td", "th") and self.rows:
            self.rows[-1].append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def png_size(b64: str) -> tuple[int, int, int]:
    raw = base64.b64decode(b64, validate=True)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    assert raw[12:16] == b"IHDR"
    w, h = struct.unpack(">II", raw[16:24])
    return w, h, len(raw)


@pytest.mark.parametrize("name", list(CASES))
def test_report_is_well_formed_with_sections_and_images(runs, name):
    d, r = runs[name]
    path = d / "report.html"
    assert path.exists() and "report.html" in r.stderr
    page = parse(path)
    assert not page.errors and not page.stack, (page.errors, page.stack)
    assert not page.external  # self-contained: no scripts, stylesheets or remote images
    sections, alts, _ = CASES[name]
    assert sections <= page.ids
    assert alts <= {img["alt"] for img in page.images}
    for img in page.images:
        w, h, n = png_size(img["src"].split(",", 1)[1])
        assert w >= 200 and h >= 150 and n > 5000, (img["alt"], w, h, n)


@pytest.mark.parametrize("name", list(CASES))
def test_report_tables_match_metrics_json(runs, name):
    """The metrics table repeats metrics.json; the held-out anchors rescored with the saved model give
    the run's own val and test metric (one anchor each with max_anchors=4)."""
    d, _ = runs[name]
    mj = json.loads((d / "metrics.json").read_text())
    page = parse(d / "report.html")
    metric = CASES[name][2]
    head = next(r for r in page.rows if r and r[0] == "metric")
    row = next(r for r in page.rows if r and r[0] == metric)
    for split in ("val", "test"):
        col = head.index(f"gbdt {split}")
        assert float(row[col]) == pytest.approx(mj["metrics"][split][metric], abs=6e-5)
        for b, per in mj["baselines"].items():
            assert float(row[head.index(f"{b} {split}")]) == pytest.approx(per[split][metric], abs=6e-5)
    anchor_head = next(r for r in page.rows if r and r[0] == "anchor")
    anchors = [r for r in page.rows[page.rows.index(anchor_head) + 1:] if r and re.match(r"\d{4}-", r[0])]
    by_split = {r[1]: float(r[anchor_head.index(metric)]) for r in anchors}
    assert set(by_split) == {"val", "test"}
    for split, value in by_split.items():
        assert value == pytest.approx(mj["metrics"][split][metric], abs=6e-5)


def test_report_escapes_text(runs, tmp_path):
    """Query text with markup is shown, not interpreted."""
    from pql.report import write_report

    d, _ = runs["ltv"]
    copy = tmp_path / "run"
    shutil.copytree(d, copy)
    mj = json.loads((copy / "metrics.json").read_text())
    mj["query"] = "-- <script>alert(1)</script> & co\n" + mj["query"]
    (copy / "metrics.json").write_text(json.dumps(mj))
    text = write_report(copy).read_text()
    assert "<script>" not in text
    assert html.escape("<script>alert(1)</script> & co") in text


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it in .ci/run)")
@pytest.mark.parametrize("name", ["buy_it_again", "churn"])
def test_report_renders_in_headless_chromium(runs, name, tmp_path):
    d, _ = runs[name]
    page = tmp_path / "page.html"
    # the report plus a probe that lists each image's natural size once the page has loaded
    probe = ("<script>window.addEventListener('load',()=>{const o=document.createElement('pre');o.id='probe';"
             "o.textContent=JSON.stringify([...document.images].map(i=>[i.alt,i.complete,i.naturalWidth,"
             "i.naturalHeight]));document.body.appendChild(o);});</script>")
    page.write_text((d / "report.html").read_text().replace("</body>", probe + "</body>"))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1200,2000", (d / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    w, h, n = png_size(base64.b64encode(shot.read_bytes()).decode())
    assert (w, h) == (1200, 2000) and n > 20000
    dom = subprocess.run(flags + ["--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert m, dom[-500:]
    images = json.loads(html.unescape(m.group(1)))
    assert {alt for alt, *_ in images} == CASES[name][1]
    for alt, complete, nw, nh in images:
        assert complete and nw >= 200 and nh >= 150, (alt, nw, nh)


def test_report_reads_a_csv_run_folder(runs, tmp_path):
    """A run written with --format csv gives the same per-anchor metric as the Parquet one."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from pql.report import write_report

    d, _ = runs["ltv"]
    copy = tmp_path / "run"
    shutil.copytree(d, copy)
    for name in ("training_table", "predictions"):
        pcsv.write_csv(pq.read_table(copy / f"{name}.parquet"), copy / f"{name}.csv")
        (copy / f"{name}.parquet").unlink()
    (copy / "report.html").unlink()
    page = parse(write_report(copy))
    mj = json.loads((copy / "metrics.json").read_text())
    head = next(r for r in page.rows if r and r[0] == "anchor")
    rows = [r for r in page.rows[page.rows.index(head) + 1:] if r and re.match(r"\d{4}-", r[0])]
    assert {r[1]: float(r[3]) for r in rows} == pytest.approx({s: mj["metrics"][s]["mae"] for s in ("val", "test")},
                                                              abs=6e-5)


def test_report_without_model_says_why(runs, tmp_path):
    from pql.report import write_report

    d, _ = runs["churn"]
    copy = tmp_path / "run"
    shutil.copytree(d, copy)
    shutil.rmtree(copy / "model")
    page = parse(write_report(copy))
    assert "metrics" in page.ids and "per-anchor" not in page.ids and not page.images
    assert "no saved model" in "".join(page.text)
