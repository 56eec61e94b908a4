"""The parser's disk cache (pql/parser.py): a loaded parser behaves exactly like a built one, and a
missing, stale, corrupt, foreign or unwritable cache only costs a rebuild."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pql import parser as P
from pql.errors import PQLError
from tests.corpus_loader import load_corpus


def _outcome(text: str):
    try:
        query, warnings = P.parse_with_warnings(text)
    except PQLError as e:
        return ("error", e.code, e.message, e.span, tuple(e.hints))
    return ("ok", repr(query), tuple((w.code, w.message, w.span) for w in warnings))


def _texts() -> list[str]:
    """Every corpus query and, for the valid ones, a few truncations and splices (syntax errors of
    many kinds, whose messages depend on the parse tables' expected-token sets)."""
    texts = []
    for q in load_corpus():
        texts.append(q.text)
        if q.task_type is not None:
            n = len(q.text)
            texts += [q.text[:n * k // 5] for k in range(1, 5)]
            texts += [q.text[:n // 2] + " ) , " + q.text[n // 2:], q.text + " FOR EACH users.user_id"]
    return texts


def _counting_build(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = P._build

    def build(grammar: str):
        calls.append(1)
        return real(grammar)

    monkeypatch.setattr(P, "_build", build)
    return calls


def _cache_files(d: Path) -> list[Path]:
    return sorted(d.glob("parser-*.pickle"))


def test_loaded_parser_behaves_like_a_built_one(tmp_path, monkeypatch):
    calls = _counting_build(monkeypatch)
    built = P.build_lark_parser(tmp_path)
    loaded = P.build_lark_parser(tmp_path)
    assert len(calls) == 1 and len(_cache_files(tmp_path)) == 1  # the second came from the file
    assert loaded is not built
    texts = _texts()
    assert len(texts) > 500
    results = {}
    for name, parser in (("built", built), ("loaded", loaded)):
        monkeypatch.setattr(P, "lark_parser", lambda parser=parser: parser)
        results[name] = [_outcome(t) for t in texts]
    assert results["built"] == results["loaded"]
    kinds = {r[0] for r in results["loaded"]}
    assert kinds == {"ok", "error"}
    assert len({r[1] for r in results["loaded"] if r[0] == "error"}) >= 5  # several error codes covered


def test_corrupt_or_truncated_file_is_ignored_and_rewritten(tmp_path, monkeypatch):
    calls = _counting_build(monkeypatch)
    P.build_lark_parser(tmp_path)
    (path,) = _cache_files(tmp_path)
    good = path.read_bytes()
    header = good.split(b"\n", 1)[0] + b"\n"
    for i, bad in enumerate((header + b"\x80\x05garbage", good[:len(good) // 2], b"", b"\x00" * 100)):
        path.write_bytes(bad)
        parser = P.build_lark_parser(tmp_path)
        monkeypatch.setattr(P, "lark_parser", lambda parser=parser: parser)
        assert _outcome("PREDICT users.age FOR EACH users.user_id")[0] == "ok"
        assert len(calls) == i + 2 and path.read_bytes().startswith(header)  # rebuilt and rewritten
        P.build_lark_parser(tmp_path)
        assert len(calls) == i + 2  # the rewritten file loads
    assert not list(tmp_path.glob(".parser-*"))  # no temporary files left behind


def test_a_file_for_another_key_is_never_loaded(tmp_path, monkeypatch):
    calls = _counting_build(monkeypatch)
    P.build_lark_parser(tmp_path)
    (path,) = _cache_files(tmp_path)
    data = path.read_bytes()
    header, body = data.split(b"\n", 1)
    stale = header[:-4] + (b"0000" if not header.endswith(b"0000") else b"1111")
    path.write_bytes(stale + b"\n" + body)  # a valid parser, but saved under another key
    P.build_lark_parser(tmp_path)
    assert len(calls) == 2 and path.read_bytes().split(b"\n", 1)[0] == header  # rewritten under its own key


def test_a_changed_grammar_or_lark_version_gets_another_key(tmp_path, monkeypatch):
    grammar = P.grammar_text()
    key = P._cache_key(grammar)
    assert P._cache_key(grammar + "\n// changed\n") != key
    monkeypatch.setattr(P.lark, "__version__", "0.0.0-test")
    assert P._cache_key(grammar) != key
    calls = _counting_build(monkeypatch)
    P.build_lark_parser(tmp_path)
    monkeypatch.setattr(P, "grammar_text", lambda: grammar + "\n// changed\n")
    P.build_lark_parser(tmp_path)
    assert len(calls) == 2 and len(_cache_files(tmp_path)) == 2


def test_unwritable_cache_dir_still_parses(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    calls = _counting_build(monkeypatch)
    for d in (blocker / "cache", blocker):
        parser = P.build_lark_parser(d)
        monkeypatch.setattr(P, "lark_parser", lambda parser=parser: parser)
        assert _outcome("PREDICT users.age FOR EACH users.user_id")[0] == "ok"
    assert len(calls) == 2 and blocker.read_text() == "not a directory"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX ownership")
def test_a_file_owned_by_someone_else_is_not_unpickled(tmp_path, monkeypatch):
    calls = _counting_build(monkeypatch)
    P.build_lark_parser(tmp_path)
    monkeypatch.setattr(P.os, "getuid", lambda: os.getuid() + 1)
    P.build_lark_parser(tmp_path)
    assert len(calls) == 2


def test_cache_dir_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PQL_CACHE_DIR", str(tmp_path / "c"))
    assert P.parser_cache_dir() == tmp_path / "c"
    monkeypatch.setenv("PQL_CACHE_DIR", "")
    assert P.parser_cache_dir() is None
    monkeypatch.delenv("PQL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert P.parser_cache_dir() == tmp_path / "xdg" / "pql"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert P.parser_cache_dir() == tmp_path / "home" / ".cache" / "pql"


def test_no_cache_dir_builds_without_files(tmp_path, monkeypatch):
    calls = _counting_build(monkeypatch)
    P.build_lark_parser(None)
    P.build_lark_parser(None)
    assert len(calls) == 2
