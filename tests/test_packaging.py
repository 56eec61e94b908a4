"""Packaging: every sub-package ships, and the grammar is found from an installed wheel."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "pql").rglob("__init__.py")}
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    assert "pql.grammar" in listed


def test_grammar_is_package_data() -> None:
    import importlib.resources

    text = (importlib.resources.files("pql.grammar") / "pql.lark").read_text()
    assert "PREDICT" in text.upper()
    assert (ROOT / "grammar" / "pql.lark").read_text() == text
