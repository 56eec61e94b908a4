"""examples/sdk_buy_it_again.py: the Kumo recipe's script runs end to end on generated data, and it
differs from the recipe's code only in the import, the init call, the connector and X = 30."""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "sdk_buy_it_again.py"
RECIPE_CANDIDATES = [ROOT.parent / "shared" / "seed" / "buy-it-again-recipe.txt",
                     Path("/work/shared/seed/buy-it-again-recipe.txt")]


# -- the script differs from the recipe only where it must ----------------------------------------
def recipe_code(text: str) -> list[str]:
    """The recipe's code: from its first import to the end, without the numbered step headings."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("import kumoai"))
    return [line.rstrip() for line in lines[start:]
            if line.strip() and not re.match(r"^\d+\.\s+[A-Z]", line)]


def script_code(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


# the only lines that may differ: (recipe line, script line) predicates
ALLOWED = {
    "import": (lambda r: r == "import kumoai as kumo", lambda s: s == "import pql as kumo, sys"),
    "init": (lambda r: r.startswith("kumo.init("), lambda s: s.startswith("kumo.init(")),
    "connector": (lambda r: r.startswith("connector = kumo.S3Connector("),
                  lambda s: s.startswith("connector = kumo.LocalConnector(")),
}


def changed_lines(recipe: list[str], script: list[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=recipe, b=script, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        assert op == "replace" and i2 - i1 == j2 - j1, f"lines added or removed: {recipe[i1:i2]} -> {script[j1:j2]}"
        pairs += list(zip(recipe[i1:i2], script[j1:j2]))
    return pairs


def test_script_is_the_recipe_but_import_init_and_connector() -> None:
    recipe_file = next((p for p in RECIPE_CANDIDATES if p.is_file()), None)
    if recipe_file is None:
        pytest.skip("the seed recipe (shared/seed/buy-it-again-recipe.txt) is not available")
    recipe = [line.replace(", X, days)", ", 30, days)") for line in recipe_code(recipe_file.read_text())]
    script = script_code(SCRIPT.read_text())
    assert len(recipe) > 40  # the whole recipe was found
    pairs = changed_lines(recipe, script)
    kinds = []
    for r, s in pairs:
        kind = next((k for k, (pr, ps) in ALLOWED.items() if pr(r) and ps(s)), None)
        assert kind is not None, f"unexpected change: {r!r} -> {s!r}"
        kinds.append(kind)
    assert sorted(kinds) == ["connector", "import", "init"]


def test_diff_check_catches_other_changes() -> None:
    recipe = ["import kumoai as kumo", "kumo.init(url=1)", "graph.validate(verbose=True)"]
    ok = ["import pql as kumo, sys", "kumo.init()", "graph.validate(verbose=True)"]
    assert [r for r, _ in changed_lines(recipe, ok)] == ["import kumoai as kumo", "kumo.init(url=1)"]
    with pytest.raises(AssertionError):
        changed_lines(recipe, ok + ["print('extra')"])


# -- the script runs end to end ------------------------------------------------------------------------
def test_script_runs_on_generated_data(tmp_path: Path) -> None:
    data = tmp_path / "shop"
    data.mkdir()
    for name in ("users", "items", "transactions"):
        shutil.copy(ROOT / "examples" / "synthetic" / f"{name}.parquet", data / f"{name}.parquet")
    proc = subprocess.run([sys.executable, str(SCRIPT), str(data)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "Graph is valid: 3 tables, 2 edges" in out
    assert "Query is valid: temporal_link_prediction" in out
    metrics = re.search(r"Training metrics: test: map@50=(\d\.\d+).*; validation: map@50=.*; training: map@50=", out)
    assert metrics is not None, out
    assert "Batch prediction job summary: job bp-job-" in out

    preds = pq.read_table(data / "buy_it_again_predictions.parquet")
    assert preds.column_names == ["ENTITY", "ANCHOR_TIMESTAMP", "CLASS", "SCORE", "RANK"]
    users = set(pq.read_table(data / "users.parquet").column("user_id").to_pylist())
    items = set(pq.read_table(data / "items.parquet").column("item_id").to_pylist())
    assert set(preds.column("ENTITY").to_pylist()) <= users and set(preds.column("CLASS").to_pylist()) <= items
    assert 1 <= pc.min(preds.column("RANK")).as_py() and pc.max(preds.column("RANK")).as_py() <= 50
    entities = len(set(preds.column("ENTITY").to_pylist()))
    assert f"{entities:,} entities at anchor" in out
    emb = pq.read_table(data / "buy_it_again_predictions_embeddings.parquet")
    assert emb.column_names == ["ENTITY", "ANCHOR_TIMESTAMP", "EMBEDDING"]
    assert set(emb.column("ENTITY").to_pylist()) == set(preds.column("ENTITY").to_pylist())
    item_emb = pq.read_table(data / "buy_it_again_predictions_item_embeddings.parquet")
    assert item_emb.column_names == ["CLASS", "EMBEDDING"]
