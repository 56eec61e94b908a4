"""The interactive shell: prompt, key bindings, history, running commands, showing their output.

``Repl(graph).run()`` reads statements until Ctrl-D or ``.quit``. Enter submits a statement once it
is complete (``scan.is_complete``) and otherwise starts a new line; an empty line (or Esc Enter)
submits what was typed; a dot command is always one line. Each statement runs in a worker thread
while the main thread shows its progress, so Ctrl-C cancels the command (its next progress report
raises, DuckDB is interrupted) and the session goes on. Output goes through prompt_toolkit's
``print_formatted_text`` in the REPL's style, without colours when ``NO_COLOR`` is set.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.output import ColorDepth, Output, create_output

import pql
from pql.errors import PQLError, PQLInternalError
from pql.graph import Graph

from .commands import REGISTRY, Cancelled, Command, Registry, ReplContext, ReplUsageError, setting_names
from .completion import PQLCompleter
from .highlight import STYLE, PQLLexer
from .scan import is_complete

__all__ = ["Repl", "history_path", "should_submit", "error_fragments", "run_repl", "run_script"]

PROMPT = "pql> "
CONTINUATION = "...> "
CANCEL_GRACE_SECONDS = 5.0
PROGRESS_INTERVAL_SECONDS = 0.5


def history_path() -> Path:
    """``$PQL_HISTORY``, else ``$XDG_STATE_HOME/pql/history``, else ``~/.local/state/pql/history``."""
    env = os.environ.get("PQL_HISTORY")
    if env:
        return Path(env).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "pql" / "history"


def _open_history(path: Path) -> tuple[History, str | None]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    except OSError as exc:
        return InMemoryHistory(), f"history is not saved: cannot write {path} ({exc.strerror or exc})"
    return FileHistory(str(path)), None


def should_submit(document: Document) -> bool:
    """Enter submits when the statement is complete, is a dot command, or the line is empty."""
    text = document.text
    if not text.strip() or text.lstrip().startswith("."):
        return True
    if "\n" in text and not document.current_line.strip() and document.is_cursor_at_the_end:
        return True
    return is_complete(text)


def error_fragments(err: PQLError, source: str | None) -> FormattedText:
    """A rendered error (code, position, source line, caret, hints) with a style per line."""
    out: list[tuple[str, str]] = []
    for line in err.render(source, "<input>").split("\n"):
        for head in ("error", "warning"):
            if line.startswith(head + "["):
                out += [(f"class:{head}", head), ("", line[len(head):] + "\n")]
                break
        else:
            if "^" in line and set(line.split("|", 1)[-1].strip()) == {"^"}:
                bar, _, carets = line.partition("|")
                out += [("", bar + "|"), ("class:caret", carets + "\n")]
            elif line.lstrip().startswith("= help:"):
                out.append(("class:hint", line + "\n"))
            else:
                out.append(("", line + "\n"))
    return FormattedText(out)


def _plain(text: str, style: str = "") -> FormattedText:
    return FormattedText([(style, text if text.endswith("\n") else text + "\n")])


class Repl:
    """One REPL session over a graph.

    ``input``/``output`` are prompt_toolkit's (tests pass a pipe input and a ``DummyOutput``);
    ``stdout`` is where results go (default: the terminal output; a file or a pipe gets plain
    text). ``history`` is a path or a prompt_toolkit History (default: :func:`history_path`).
    ``color=False`` or ``NO_COLOR`` turns colours off.
    """

    def __init__(self, graph: Graph, *, input: Any = None, output: Output | None = None,
                 stdout: TextIO | None = None, history: Path | str | History | None = None,
                 color: bool | None = None, registry: Registry = REGISTRY,
                 settings: dict[str, Any] | None = None, complete_while_typing: bool = True) -> None:
        self.graph = graph
        self.registry = registry
        self.ctx = ReplContext(graph, settings=settings)
        if color is None:
            color = not os.environ.get("NO_COLOR")
        self.color_depth = None if color else ColorDepth.DEPTH_1_BIT
        self.output = output if output is not None else create_output()
        # Results go to the terminal through print_formatted_text; to a file or pipe as plain text
        # (print_formatted_text would end every line with "\r\n").
        self.result_file = stdout if stdout is not None and not stdout.isatty() else None
        self.result_output = create_output(stdout=stdout) if stdout is not None and stdout.isatty() else self.output
        self.notices: list[str] = []
        if isinstance(history, History):
            hist = history
        else:
            hist, notice = _open_history(Path(history) if history is not None else history_path())
            if notice:
                self.notices.append(notice)
        self.history = hist
        self.session: PromptSession[str] = PromptSession(
            message=FormattedText([("class:prompt", PROMPT)]), multiline=True, key_bindings=self._bindings(),
            lexer=PQLLexer(graph), completer=PQLCompleter(graph, registry.completion_table(), setting_names()),
            complete_while_typing=complete_while_typing, history=hist, input=input, output=self.output,
            style=STYLE, include_default_pygments_style=False, color_depth=self.color_depth,
            prompt_continuation=lambda width, line, wrap: FormattedText(
                [("class:continuation", " " * width if wrap else CONTINUATION.rjust(width))]),
        )

    # -- keys ----------------------------------------------------------------------------------
    def _bindings(self) -> KeyBindings:
        kb = KeyBindings()

        @Condition
        def menu_open() -> bool:
            state = self.session.default_buffer.complete_state
            return state is not None and state.current_completion is not None

        @kb.add("enter", filter=menu_open)
        def _take_completion(event: Any) -> None:  # Enter on a highlighted completion takes it
            buf = event.current_buffer
            buf.apply_completion(buf.complete_state.current_completion)

        @kb.add("enter", filter=~menu_open)
        @kb.add("c-j", filter=~menu_open)
        def _enter(event: Any) -> None:
            buf = event.current_buffer
            if should_submit(buf.document):
                buf.validate_and_handle()
            else:
                buf.insert_text("\n")

        @kb.add("escape", "enter")
        def _submit(event: Any) -> None:
            event.current_buffer.validate_and_handle()

        return kb

    # -- output --------------------------------------------------------------------------------
    def echo(self, reply: Any, style: str = "") -> None:
        if reply is None:
            return
        frags = _plain(reply, style) if isinstance(reply, str) else FormattedText(reply)
        if frags and not frags[-1][1].endswith("\n"):
            frags = FormattedText(list(frags) + [("", "\n")])
        if self.result_file is not None:
            self.result_file.write("".join(text for _, text, *_ in frags))
            self.result_file.flush()
            return
        print_formatted_text(frags, end="", style=STYLE, output=self.result_output, color_depth=self.color_depth,
                             include_default_pygments_style=False)

    def banner(self) -> None:
        where = f" on {self.graph.path}" if self.graph.path is not None else ""
        self.echo(f"pql {pql.__version__}{where}: {len(self.graph.tables)} tables "
                  f"({', '.join(self.graph.tables)}). .help lists the commands, Ctrl-D quits.", "class:dim")
        for n in self.notices:
            self.echo(n, "class:warning")

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        """Read and run statements until Ctrl-D or .quit; returns the exit code (0)."""
        self.banner()
        while not self.ctx.quit:
            try:
                text = self.session.prompt()
            except KeyboardInterrupt:  # Ctrl-C at the prompt clears the line
                continue
            except EOFError:  # Ctrl-D
                break
            self.execute(text)
        return 0

    def execute(self, text: str) -> None:
        """Run one statement (a query or a dot command) and show its result or error."""
        stripped = text.strip()
        if not stripped:
            return
        try:
            cmd, arg = self._dispatch(stripped)
        except ReplUsageError as exc:
            self.echo(str(exc), "class:error")
            return
        self.run_command(cmd, arg)

    def _dispatch(self, stripped: str) -> tuple[Command, str]:
        if stripped.startswith("."):
            parts = stripped.split(None, 1)
            return self.registry.lookup(parts[0]), (parts[1] if len(parts) > 1 else "")
        return self.registry.lookup(".check"), stripped

    def run_command(self, cmd: Command, arg: str) -> None:
        ctx = self.ctx
        ctx.begin()
        try:
            reply = self._run_cancellable(lambda: cmd.fn(ctx, arg))
        except Cancelled:
            self.echo("cancelled", "class:warning")
            return
        except PQLError as err:
            self.echo(error_fragments(err, ctx.source))
            return
        except ReplUsageError as exc:
            self.echo(str(exc), "class:error")
            return
        except RecursionError:
            self.echo(error_fragments(PQLInternalError("the query is nested too deeply to process"), None))
            return
        except Exception as exc:  # noqa: BLE001 - a bug in pql: reported, and the session goes on
            err = PQLInternalError(f"internal error, please report: {type(exc).__name__}: {exc}")
            self.echo(error_fragments(err, None))
            return
        ctx.succeeded()
        self.echo(reply)

    def _run_cancellable(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in a worker thread; Ctrl-C here cancels it (raises Cancelled) and returns."""
        ctx = self.ctx
        box: dict[str, Any] = {}
        done = threading.Event()
        events: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        ctx.progress_sink = lambda msg, frac: events.put((msg, frac))

        def work() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                box["error"] = exc
            finally:
                done.set()

        worker = threading.Thread(target=work, name="pql-repl-command", daemon=True)
        shown = _ProgressLine(self.echo)
        try:
            worker.start()
            while not done.wait(0.05):
                shown.drain(events)
            shown.drain(events, final=True)
        except KeyboardInterrupt:
            self._cancel(done)
            raise Cancelled() from None
        finally:
            ctx.progress_sink = None
        if ctx.cancel_event.is_set():
            raise Cancelled()
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def _cancel(self, done: threading.Event) -> None:
        self.echo("cancelling ...", "class:dim")
        self.ctx.cancel()
        deadline = time.monotonic() + CANCEL_GRACE_SECONDS
        try:
            while not done.wait(0.05) and time.monotonic() < deadline:
                pass
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
            pass
        if not done.is_set():
            self.ctx.forget_database()
            self.echo("the cancelled command is still finishing in the background", "class:dim")


class _ProgressLine:
    """Shows progress reports as lines: when the message changes, at most every half second."""

    def __init__(self, echo: Callable[..., None]) -> None:
        self.echo = echo
        self.last_msg: str | None = None
        self.last_time = time.monotonic()  # quick commands show no progress at all

    def drain(self, events: "queue.SimpleQueue[tuple[str, float]]", final: bool = False) -> None:
        latest = None
        while True:
            try:
                latest = events.get_nowait()
            except queue.Empty:
                break
        if latest is None or final:
            return
        msg, frac = latest
        now = time.monotonic()
        if msg != self.last_msg and now - self.last_time >= PROGRESS_INTERVAL_SECONDS:
            self.echo(f"[{frac:4.0%}] {msg}", "class:dim")
            self.last_msg, self.last_time = msg, now


def run_repl(graph: Graph, **kwargs: Any) -> int:
    """Start an interactive session on the terminal; returns the exit code."""
    return Repl(graph, **kwargs).run()


def statements(lines: Iterable[str]) -> Iterable[str]:
    """Split script lines into statements the way the interactive prompt does."""
    buf: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n")
        if not buf:
            if not line.strip():
                continue
            if line.lstrip().startswith("."):
                yield line
                continue
        buf.append(line)
        text = "\n".join(buf)
        if not line.strip() or is_complete(text):
            yield text
            buf = []
    if buf:
        yield "\n".join(buf)


def run_script(graph: Graph, lines: Iterable[str], *, stdout: TextIO | None = None, color: bool = False,
               echo_input: bool = True) -> int:
    """Run statements read from a file or a pipe (``pql repl < session.pql``), without a prompt.

    Returns 1 when any statement failed (or the output pipe closed), else 0.
    """
    import sys

    from prompt_toolkit.input import DummyInput

    repl = Repl(graph, input=DummyInput(), stdout=stdout or sys.stdout, history=InMemoryHistory(), color=color)
    failed = False
    original = repl.echo

    def echo(reply: Any, style: str = "") -> None:
        nonlocal failed
        if style == "class:error" or (isinstance(reply, FormattedText) and any(s == "class:error" for s, _ in reply)):
            failed = True
        original(reply, style)

    repl.echo = echo  # type: ignore[method-assign]
    try:
        for text in statements(lines):
            if echo_input:
                first, *rest = text.split("\n")
                repl.echo(PROMPT + first + "".join("\n" + CONTINUATION + r for r in rest), "class:dim")
            repl.execute(text)
            if repl.ctx.quit:
                break
    except BrokenPipeError:  # the reader went away (`pql repl < s | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, (stdout or sys.stdout).fileno())
        return 1
    return 1 if failed else 0
