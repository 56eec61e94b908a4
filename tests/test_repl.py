"""The REPL driven in-process through prompt_toolkit's pipe input, its parts (scanner, completer,
highlighter, command registry) directly, script mode through the CLI, and one session through a
real pseudo-terminal."""

from __future__ import annotations

import _thread
import io
import os
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

import pql
from pql.cli import main
from pql.repl.app import Repl, should_submit, statements
from pql.repl.commands import REGISTRY, Registry, ReplContext, setting_names
from pql.repl.completion import PQLCompleter, suggest
from pql.repl.highlight import highlight
from pql.repl.scan import is_complete

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = ROOT / "examples" / "synthetic" / "graph.toml"
CHURN_LINE1 = "PREDICT COUNT(transactions.*, 0, 30, days) = 0"
CHURN_LINE2 = "FOR EACH users.user_id"
ENTER, CTRL_C, CTRL_D = "\r", "\x03", "\x04"


@pytest.fixture(scope="module")
def graph() -> pql.Graph:
    return pql.Graph.load(SYNTHETIC)


@pytest.fixture(autouse=True)
def _history_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state" / "history"
    monkeypatch.setenv("PQL_HISTORY", str(path))
    return path


def session(graph: pql.Graph, keys: str, **kwargs) -> tuple[str, Repl]:
    """Type ``keys`` into a REPL (Ctrl-D appended) and return what it printed."""
    out = io.StringIO()
    with create_pipe_input() as inp:
        inp.send_text(keys + CTRL_D)
        repl = Repl(graph, input=inp, output=DummyOutput(), stdout=out, color=False, **kwargs)
        assert repl.run() == 0
    return out.getvalue(), repl


# -- the session ---------------------------------------------------------------------------------

def test_multiline_query_is_checked_once_complete(graph: pql.Graph) -> None:
    out, repl = session(graph, CHURN_LINE1 + ENTER + CHURN_LINE2 + ENTER)
    assert "valid: binary_classification" in out
    assert "entity:    each users row, keyed by users.user_id" in out
    assert repl.ctx.last_query == CHURN_LINE1 + "\n" + CHURN_LINE2


def test_empty_line_submits_an_incomplete_query(graph: pql.Graph) -> None:
    out, _ = session(graph, "PREDICT COUNT(transactions.*, 0, 30)" + ENTER + ENTER)
    assert "error[E003]" in out and "missing FOR EACH" in out


def test_tab_and_enter_complete_in_the_session(graph: pql.Graph) -> None:
    out = io.StringIO()
    with create_pipe_input() as inp:
        repl = Repl(graph, input=inp, output=DummyOutput(), stdout=out, color=False)

        def wait_for(cond: Callable[[], bool]) -> None:
            deadline = time.monotonic() + 10
            while not cond() and time.monotonic() < deadline:
                time.sleep(0.02)

        def typist() -> None:  # completion is asynchronous: type on as a person would, once it shows
            buf = repl.session.default_buffer
            inp.send_text("PREDICT SUM(transactions.pr")
            wait_for(lambda: buf.complete_state is not None and bool(buf.complete_state.completions))
            inp.send_text("\t")  # highlights the only candidate, inserted as a preview
            wait_for(lambda: buf.complete_state is not None and buf.complete_state.current_completion is not None)
            inp.send_text(ENTER)  # takes the completion, does not end the line
            wait_for(lambda: buf.complete_state is None)
            inp.send_text(", 0, 30) FOR EACH users.user_id" + ENTER + CTRL_D)

        thread = threading.Thread(target=typist, daemon=True)
        thread.start()
        assert repl.run() == 0
        thread.join()
    out = out.getvalue()
    assert "valid: regression" in out
    assert repl.ctx.last_query == "PREDICT SUM(transactions.price, 0, 30) FOR EACH users.user_id"


def test_tables_and_schema(graph: pql.Graph) -> None:
    out, _ = session(graph, ".tables" + ENTER + ".schema transactions" + ENTER)
    assert "users         primary key user_id, time join_timestamp" in out
    assert "transactions  primary key transaction_id, time timestamp, 8 columns" in out
    assert "transactions (primary key transaction_id" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "-> users" in lines["user_id"] and "-> items" in lines["item_id"]
    assert lines["price"].split()[1:3] == ["float", "numerical"]
    assert "time column" in lines["timestamp"]


def test_help_lists_every_registered_command(graph: pql.Graph) -> None:
    out, _ = session(graph, ".help" + ENTER)
    commands = list(REGISTRY)
    assert {c.name for c in commands} >= {".tables", ".schema", ".check", ".explain", ".sql", ".labels", ".run",
                                          ".graph", ".quit", ".help"}
    for c in commands:
        assert f"  {c.usage} " in out, c.name
        assert c.summary in out


def test_an_invalid_query_shows_code_and_caret_and_the_session_goes_on(graph: pql.Graph) -> None:
    out, _ = session(graph, "PREDICT SUM(transactions.prce, 0, 30) FOR EACH users.user_id" + ENTER
                     + ".schema nope" + ENTER + ".bogus" + ENTER + ".tables" + ENTER)
    assert "error[E102]: table 'transactions' has no column 'prce'; did you mean 'price'?" in out
    assert "1 | PREDICT SUM(transactions.prce, 0, 30) FOR EACH users.user_id\n  |             ^^^^" in out
    assert "error[E101]: unknown table 'nope'" in out
    assert "unknown command '.bogus'" in out
    assert out.rstrip().endswith("8 columns")  # .tables still ran after three errors


def test_syntax_error_in_dot_command_query_points_into_it(graph: pql.Graph) -> None:
    out, _ = session(graph, ".check PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id WHERE" + ENTER)
    assert "error[E018]" in out and "WHERE clause is empty" in out


def test_ctrl_c_at_the_prompt_clears_the_line(graph: pql.Graph) -> None:
    out, repl = session(graph, "PREDICT garbage" + CTRL_C + ".tables" + ENTER)
    assert "error" not in out and "8 columns" in out
    assert repl.ctx.last_query is None


def test_history_file_is_written(graph: pql.Graph, _history_in_tmp: Path) -> None:
    session(graph, CHURN_LINE1 + ENTER + CHURN_LINE2 + ENTER + ".tables" + ENTER)
    text = _history_in_tmp.read_text()
    assert f"+{CHURN_LINE1}\n+{CHURN_LINE2}\n" in text and "+.tables\n" in text
    # and the next session can recall it (Up arrow, Enter runs the last entry again)
    out, _ = session(graph, "\x1b[A" + ENTER)
    assert "8 columns" in out


def test_labels_preview_on_the_synthetic_example(graph: pql.Graph) -> None:
    out, _ = session(graph, f".labels {CHURN_LINE1} {CHURN_LINE2}" + ENTER)
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("ENTITY"))
    assert lines[head].split() == ["ENTITY", "ANCHOR_TIMESTAMP", "TARGET", "SPLIT"]
    rows = lines[head + 2: head + 12]
    assert len(rows) == 10 and all(r.split()[-1] in ("train", "val", "test") for r in rows)
    assert all(r.split()[-2] in ("True", "False") for r in rows)
    expected = pql.compile(f"{CHURN_LINE1} {CHURN_LINE2}", graph).training_table().num_rows
    assert f"({expected} rows, {expected - 10} not shown)" in out


def test_commands_without_a_query_use_the_last_one(graph: pql.Graph) -> None:
    out, _ = session(graph, f"{CHURN_LINE1} {CHURN_LINE2}" + ENTER + ".sql" + ENTER + ".explain" + ENTER)
    assert "-- generated by pql" in out and 'FROM "transactions"' in out
    out2, _ = session(graph, ".sql" + ENTER)
    assert "no query yet" in out2


def test_set_changes_the_preview_size(graph: pql.Graph) -> None:
    out, _ = session(graph, ".set limit=3" + ENTER + f".labels {CHURN_LINE1} {CHURN_LINE2}" + ENTER)
    assert "limit = 3" in out and "not shown)" in out
    head = out.splitlines().index(next(line for line in out.splitlines() if line.startswith("ENTITY")))
    assert out.splitlines()[head + 5].startswith("(")


def test_ctrl_c_cancels_a_running_command_not_the_repl(graph: pql.Graph) -> None:
    registry = Registry()
    for cmd in REGISTRY:
        registry.add(cmd)
    calls = []

    @registry.command(".slow", "A command that runs until cancelled.")
    def _slow(ctx: ReplContext, arg: str) -> str:
        _thread.interrupt_main()  # the user presses Ctrl-C while this runs
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            calls.append(1)
            ctx.progress("working", 0.5)  # raises Cancelled once cancelled
            time.sleep(0.01)
        return "finished without being cancelled"

    out, repl = session(graph, ".slow" + ENTER + ".tables" + ENTER, registry=registry)
    assert "cancelled" in out and "finished without" not in out
    assert "8 columns" in out and calls


def test_dot_quit_ends_the_session(graph: pql.Graph) -> None:
    out, repl = session(graph, ".quit" + ENTER + ".tables" + ENTER)
    assert repl.ctx.quit and "8 columns" not in out


def test_run_command_trains_with_a_baseline(graph: pql.Graph) -> None:
    out, _ = session(graph, ".set ranker=popularity" + ENTER + ".run " + CHURN_LINE1 + " " + CHURN_LINE2 + ENTER)
    assert "error" not in out.lower(), out
    assert "metric" in out and "popularity val" in out and "predictions:" in out


# -- input completeness ------------------------------------------------------------------------

@pytest.mark.parametrize("text, complete", [
    ("", True),
    ("PREDICT", False),
    ("PREDICT COUNT(transactions.*, 0, 30", False),
    ("PREDICT COUNT(transactions.*, 0, 30)", False),
    ("PREDICT COUNT(transactions.*, 0, 30)\n-- a comment\n", False),
    ("PREDICT users.age FOR EACH users.user_id WHERE", False),
    ("PREDICT users.country = 'a", False),
    ("PREDICT users.age FOR EACH users.user_id", True),
    ("PREDICT users.age FOR EACH users.user_id 5", True),  # an error inside: run it, show the error
    ("PREDICT users.age ASSUMING", True),
    ("PREDICT `users", True),
    ("SELECT 1", True),
])
def test_is_complete(text: str, complete: bool) -> None:
    assert is_complete(text) is complete


def test_should_submit_dot_commands_and_empty_lines() -> None:
    assert should_submit(Document(".schema"))
    assert should_submit(Document("PREDICT COUNT(t.*, 0, 30)\n"))  # Enter on an empty line
    assert not should_submit(Document("PREDICT COUNT(t.*, 0, 30)"))


def test_script_statements_split_like_the_prompt() -> None:
    lines = [".tables\n", "\n", CHURN_LINE1 + "\n", CHURN_LINE2 + "\n", "PREDICT COUNT(t.*, 0, 30)\n", "\n",
             ".graph\n"]
    assert list(statements(lines)) == [".tables", CHURN_LINE1 + "\n" + CHURN_LINE2, "PREDICT COUNT(t.*, 0, 30)\n",
                                       ".graph"]


# -- completion ----------------------------------------------------------------------------------

def _texts(completer: PQLCompleter, text: str) -> list[str]:
    return [c.text for c in completer.get_completions(Document(text), None)]


def test_completes_columns_of_the_table_before_the_dot(graph: pql.Graph) -> None:
    completer = PQLCompleter(graph, REGISTRY.completion_table())
    assert _texts(completer, "PREDICT SUM(transactions.") == graph.tables["transactions"].column_names
    assert _texts(completer, "PREDICT COUNT(transactions.") == ["*"] + graph.tables["transactions"].column_names
    assert _texts(completer, "PREDICT SUM(transactions.pr") == ["price"]
    completion = next(completer.get_completions(Document("PREDICT SUM(transactions.pr"), None))
    assert completion.start_position == -2


@pytest.mark.parametrize("text, expected", [
    ("", ["PREDICT"]),
    ("pre", ["predict"]),
    ("PREDICT COUNT(", ["users", "items", "transactions"]),
    ("PREDICT COUNT(transactions.*, 0, 30, ", ["SECONDS", "MINUTES", "HOURS", "DAYS", "WEEKS", "MONTHS"]),
    ("PREDICT COUNT(transactions.*, 0, 30, d", ["days"]),
    ("PREDICT COUNT(transactions.*", ["WHERE"]),
    ("PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH ", ["users", "items", "transactions"]),
    ("PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH users.", ["user_id"]),
    ("PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id ", ["WHERE", "ASSUMING"]),
    ("PREDICT COUNT(transactions.*, 0, 30) > 0 ", ["AND", "OR", "RANK TOP", "CLASSIFY", "FORECAST", "FOR EACH",
                                                  "FOR"]),
    ("PREDICT LIST_DISTINCT(transactions.item_id, 0, 30) RANK ", ["TOP"]),
    ("PREDICT users.age IS ", ["NULL", "NOT NULL"]),
    ("PREDICT users.country = 'ab", []),
    ("PREDICT users.age -- a comm", []),
    (".sch", [".schema"]),
    (".schema tr", ["transactions"]),
    (".check PREDICT SUM(users.", ["user_id", "age", "country", "is_vip", "join_timestamp"]),
])
def test_completion_by_position(graph: pql.Graph, text: str, expected: list[str]) -> None:
    completer = PQLCompleter(graph, REGISTRY.completion_table())
    assert _texts(completer, text) == expected


def test_set_completes_setting_names(graph: pql.Graph) -> None:
    completer = PQLCompleter(graph, REGISTRY.completion_table(), setting_names())
    assert _texts(completer, ".set li") == ["limit"]
    assert {"ranker", "out", "split", "anchor_time"} <= set(_texts(completer, ".set "))
    assert _texts(completer, ".set split=") == []


def test_completion_after_a_target_offers_aggregations_and_tables(graph: pql.Graph) -> None:
    _, cands = suggest("PREDICT ", graph)
    texts = [c.text for c in cands]
    assert "COUNT" in texts and "LIST_DISTINCT" in texts and "transactions" in texts
    _, cands = suggest("PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id WHERE ", graph)
    assert {"COUNT", "users"} <= {c.text for c in cands}


def test_names_that_need_backticks_are_quoted() -> None:
    g = pql.Graph.from_tables({"rank": pa.table({"id": [1, 2], "top": [1, 2], "unit price": [1.0, 2.0]})},
                              primary_keys={"rank": "id"})
    assert [c.text for c in suggest("PREDICT COUNT(", g)[1]] == ["`rank`"]  # a reserved word
    # after a dot every word is a column name: only names that are not identifiers need quoting
    assert [c.text for c in suggest("PREDICT COUNT(`rank`.", g)[1]] == ["*", "id", "top", "`unit price`"]


# -- highlighting --------------------------------------------------------------------------------

def test_highlighting_uses_pql_token_classes(graph: pql.Graph) -> None:
    text = "PREDICT COUNT(transactions.* WHERE transactions.status = 'paid', 0, 30, days) > 2 -- note\n" \
           "FOR EACH users.user_id"
    styles = {frag: style for style, frag in highlight(text, graph)}
    assert styles["PREDICT"] == styles["FOR EACH"] == styles["WHERE"] == "class:pql.keyword"
    assert styles["COUNT"] == "class:pql.aggregation"
    assert styles["days"] == "class:pql.unit"
    assert styles["'paid'"] == "class:pql.string"
    assert styles["30"] == styles["2"] == "class:pql.number"
    assert styles["-- note"] == "class:pql.comment"
    assert styles["transactions"] == "class:pql.table" and styles["status"] == "class:pql.column"
    assert {s for s, _ in highlight("PREDICT nope.x FOR EACH users.bad", graph) if s == "class:pql.unknown"}
    assert "".join(f for _, f in highlight(text, graph)) == text


def test_mixed_case_keywords_are_not_highlighted_as_keywords() -> None:
    styles = {frag: style for style, frag in highlight("Predict count(t.*)")}
    assert styles["Predict"] == "class:pql.name" and styles["count"] == "class:pql.aggregation"


# -- the CLI -------------------------------------------------------------------------------------

def test_pql_repl_reads_statements_from_stdin_without_a_terminal() -> None:
    script = f".tables\n{CHURN_LINE1}\n{CHURN_LINE2}\nPREDICT SUM(transactions.prce, 0, 30) FOR EACH users.user_id\n"
    result = CliRunner().invoke(main, ["repl", "--graph", str(SYNTHETIC)], input=script)
    assert result.exit_code == 1  # one statement failed
    assert "pql> .tables" in result.output and "valid: binary_classification" in result.output
    assert f"pql> {CHURN_LINE1}\n...> {CHURN_LINE2}" in result.output
    assert "error[E102]" in result.output


def test_pql_repl_with_data_dir() -> None:
    result = CliRunner().invoke(main, ["repl", "--data", str(SYNTHETIC.parent)], input=".tables\n")
    assert result.exit_code == 0 and "transactions" in result.output


def test_pql_alone_without_a_terminal_shows_the_help() -> None:
    result = CliRunner().invoke(main, [])
    assert result.exit_code == 2 and "Usage:" in result.output and "repl" in result.output


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_end_to_end_through_a_pseudo_terminal(tmp_path: Path) -> None:
    """`pql` alone, in a folder holding graph.toml, on a real terminal: the REPL starts."""
    work = tmp_path / "proj"
    work.mkdir()
    (work / "graph.toml").write_text(SYNTHETIC.read_text().replace('path = "', f'path = "{SYNTHETIC.parent}/'))
    master, slave = os.openpty()
    env = {**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1", "NO_COLOR": "1", "TERM": "xterm",
           "PQL_HISTORY": str(tmp_path / "hist")}
    proc = subprocess.Popen([sys.executable, "-c", "from pql.cli import main; main()"], cwd=work, env=env,
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    seen, cursor = b"", 0

    def read_until(marker: bytes, timeout: float = 20.0) -> None:
        """Read until ``marker`` appears after the previous marker found."""
        nonlocal seen, cursor
        deadline = time.monotonic() + timeout
        while marker not in seen[cursor:]:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {marker!r}; got {seen[-2000:]!r}"
            ready, _, _ = select.select([master], [], [], left)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
        cursor = seen.index(marker, cursor) + len(marker)

    try:
        read_until(b"pql>")
        os.write(master, b".schema users\r")
        read_until(b"referenced by transactions.user_id")
        read_until(b"pql>")  # keys typed before the prompt is back would reach a cooked-mode terminal
        os.write(master, b"PREDICT users.agee FOR EACH users.user_id\r")
        read_until(b"did you mean 'age'?")
        read_until(b"pql>")
        os.write(master, CTRL_D.encode())
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"(primary key user_id, time join_timestamp, 5 columns)" in seen
    assert b"error" in seen and b"[E102]" in seen
    # NO_COLOR: attributes such as bold may remain, but no foreground or background colour
    params = {p for sgr in re.findall(rb"\x1b\[([0-9;]*)m", seen) for p in sgr.split(b";") if p}
    assert not {p for p in params if p.isdigit() and (30 <= int(p) <= 49 or 90 <= int(p) <= 107)}, params


def test_a_failed_query_does_not_replace_the_last_query(graph: pql.Graph) -> None:
    out, repl = session(graph, f"{CHURN_LINE1} {CHURN_LINE2}" + ENTER
                        + "PREDICT SUM(transactions.prce, 0, 30) FOR EACH users.user_id" + ENTER + ".sql" + ENTER)
    assert repl.ctx.last_query == f"{CHURN_LINE1} {CHURN_LINE2}"
    assert out.count("error[E102]") == 1 and "-- generated by pql" in out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.sampled_from(list("PREDICT COUNT(t.*, 0, 30) FOR EACH users.user_id WHERE 'a\"`#-\n<>=!")),
               max_size=60))
def test_typing_anything_never_breaks_the_helpers(graph: pql.Graph, text: str) -> None:
    g = graph
    assert "".join(frag for _, frag in highlight(text, g)) == text
    prefix, _ = suggest(text, g)
    assert text.endswith(prefix)
    assert is_complete(text) in (True, False)
