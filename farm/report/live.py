"""Live progress of a running suite for the waiting client: a rich bar on a TTY, plain lines elsewhere,
and with -v a line per test as it finishes."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Self, TextIO

if TYPE_CHECKING:  # rich is imported when a bar is drawn: plain lines (no TTY) need none of it (0.1-0.2 s)
    from rich.progress import Progress, TaskID

#: Least time between two plain progress lines when the status has not changed (seconds).
PLAIN_INTERVAL_S = 5.0


def short_duration(seconds: float) -> str:
    """A compact duration for progress lines: `3.1s`, `2m05s`, `1h02m`."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def progress_line(done: int, total: int, failed: int, elapsed_s: float, status: str,
                  eta_s: float | None = None) -> str:
    """One plain progress line: `[farm] running: 120/400 tests, 2 failed, 3.1s elapsed, ETA 7.0s`.

    The ETA is the caller's (farm.eta: from recorded durations); without one, none is shown. A
    count-based guess is not: when a slow assignment runs alone at the end it says 0.0s throughout."""
    tests = f"{done}/{total} tests" if total > 0 else f"{done} tests"
    line = f"[farm] {status}: {tests}, {failed} failed, {short_duration(elapsed_s)} elapsed"
    if eta_s is not None:
        line += f", ETA {short_duration(eta_s)}"
    return line


class LiveProgress:
    """Shows a suite's progress on `stream` while the client waits for it.

    Interactive (a TTY, or `interactive=True`): a rich progress bar redrawn in place.
    Otherwise: a plain line on the first update, on every status change, and at most every
    `PLAIN_INTERVAL_S` seconds in between. `close()` may be called any number of times, with or
    without updates before it; the object is also a context manager that closes on exit.
    """

    def __init__(
        self,
        stream: TextIO,
        total: int | None = None,
        *,
        interactive: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._total = total
        self._forced = interactive is True
        self.interactive = _is_tty(stream) if interactive is None else interactive
        self._clock = clock
        self._closed = False
        self._last_status: str | None = None
        self._last_print: float | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def update(self, done: int, total: int, failed: int, elapsed_s: float, status: str,
               eta_s: float | None = None) -> None:
        """Show the latest counts (and the time left, when known); ignored once closed. A `total`
        of 0 means not known yet."""
        if self._closed:
            return
        if total <= 0 and self._total:
            total = self._total
        if self.interactive:
            self._update_bar(done, total, failed, elapsed_s, status, eta_s)
        else:
            self._update_plain(done, total, failed, elapsed_s, status, eta_s)

    def echo(self, lines: list[str], out: TextIO) -> None:
        """Write whole lines to `out` (the report's stream); above the bar when both share a terminal."""
        if not lines:
            return
        if self._progress is not None and not self._closed and _is_tty(out):
            for line in lines:
                self._progress.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
            return
        out.write("\n".join(lines) + "\n")
        out.flush()

    def close(self) -> None:
        """Stop the display and give the terminal back (cursor shown); safe to call again."""
        if self._closed:
            return
        self._closed = True
        progress, self._progress = self._progress, None
        if progress is not None:
            progress.stop()

    def _update_plain(self, done: int, total: int, failed: int, elapsed_s: float, status: str,
                      eta_s: float | None) -> None:
        now = self._clock()
        due = self._last_print is None or now - self._last_print >= PLAIN_INTERVAL_S
        if not due and status == self._last_status:
            return
        self._last_status, self._last_print = status, now
        self._stream.write(progress_line(done, total, failed, elapsed_s, status, eta_s) + "\n")
        self._stream.flush()

    def _update_bar(self, done: int, total: int, failed: int, elapsed_s: float, status: str,
                    eta_s: float | None) -> None:
        fields = _fields(failed, elapsed_s, status, eta_s)
        if self._progress is None or self._task is None:
            # Started on the first update, so that closing an unused display writes nothing.
            self._progress = self._make_progress()
            self._task = self._progress.add_task("suite", total=total or None, completed=done, fields=fields)
            self._progress.start()
            return
        self._progress.update(self._task, completed=done, total=total or None, fields=fields)

    def _make_progress(self) -> Progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        console = Console(
            file=self._stream,
            force_terminal=True if self._forced else None,
            force_interactive=True if self._forced else None,
            highlight=False,
        )
        return Progress(
            SpinnerColumn(),
            TextColumn("{task.fields[fields][status]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "tests, {task.fields[fields][failed]} failed, "
                "{task.fields[fields][elapsed]} elapsed{task.fields[fields][eta]}"
            ),
            console=console,
            refresh_per_second=4,
            redirect_stdout=False,  # the report's lines go where stdout goes, even when it is not the terminal
            redirect_stderr=False,
        )


def _fields(failed: int, elapsed_s: float, status: str, eta: float | None) -> dict[str, str]:
    """The task fields the bar's text columns show (markup-escaped where it comes from outside)."""
    from rich.markup import escape

    return {
        "status": escape(status),
        "failed": f"[red]{failed}[/red]" if failed else "0",
        "elapsed": short_duration(elapsed_s),
        "eta": f", ETA {short_duration(eta)}" if eta is not None else "",
    }


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


#: The word `-v` prints for an outcome (pytest's, and farm's own for its outcomes).
VERBOSE_WORD = {
    "passed": "PASSED", "failed": "FAILED", "error": "ERROR", "skipped": "SKIPPED", "xfailed": "XFAIL",
    "xpassed": "XPASS", "timeout": "TIMEOUT", "crashed": "CRASHED", "flaky": "FLAKY", "not_run": "NOT RUN",
}


def verbose_line(worker: str, done: int, total: int, test_id: str, outcome: str, message: str = "") -> str:
    """A test's `-v` line, as pytest-xdist prints one: `[worker] [ 40%] PASSED tests/t.py::test_a`,
    with pytest's `(reason)` after a skip or an xfail."""
    percent = min(100, done * 100 // total) if total > 0 else 100
    line = f"[{worker or 'farm'}] [{percent:3d}%] {VERBOSE_WORD.get(outcome, outcome.upper())} {test_id}"
    reason = message.strip().splitlines()[0] if message.strip() else ""
    if reason and outcome in ("skipped", "xfailed", "xpassed"):
        line += f" ({reason})"
    return line
