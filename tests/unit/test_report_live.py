"""Live progress: plain throttled lines off a TTY, a rich bar on one, and a terminal left intact."""

from __future__ import annotations

import io
import re

import pytest

from farm.report.live import LiveProgress, progress_line, short_duration, verbose_line

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_on_first_update_status_changes_and_every_five_seconds() -> None:
    out, clock = io.StringIO(), FakeClock()
    live = LiveProgress(out, 400, clock=clock)
    assert not live.interactive
    live.update(0, 400, 0, 0.0, "queued")
    clock.now += 1
    live.update(10, 400, 0, 0.5, "running", 19.5)  # status changed
    clock.now += 1
    live.update(50, 400, 1, 1.0, "running", 10.0)  # 1 s since last line: quiet
    clock.now += 3.9
    live.update(90, 400, 1, 1.9, "running", 8.0)  # 4.9 s: still quiet
    clock.now += 0.1
    live.update(100, 400, 2, 2.0, "running", 6.0)  # 5 s: due
    clock.now += 1
    live.update(400, 400, 2, 8.0, "finished")  # status changed
    live.close()
    assert out.getvalue().splitlines() == [
        "[farm] queued: 0/400 tests, 0 failed, 0.0s elapsed",
        "[farm] running: 10/400 tests, 0 failed, 0.5s elapsed, ETA 19.5s",
        "[farm] running: 100/400 tests, 2 failed, 2.0s elapsed, ETA 6.0s",
        "[farm] finished: 400/400 tests, 2 failed, 8.0s elapsed",
    ]


def test_plain_close_and_updates_after_close_print_nothing() -> None:
    out, clock = io.StringIO(), FakeClock()
    live = LiveProgress(out, clock=clock)
    live.close()
    live.close()
    live.update(1, 2, 0, 1.0, "running")
    assert out.getvalue() == ""


def test_plain_line_without_a_known_total_falls_back_to_the_constructor_total() -> None:
    out = io.StringIO()
    LiveProgress(out, clock=FakeClock()).update(5, 0, 0, 1.0, "collecting")
    LiveProgress(out, 50, clock=FakeClock()).update(5, 0, 0, 1.0, "running")
    assert out.getvalue().splitlines() == [
        "[farm] collecting: 5 tests, 0 failed, 1.0s elapsed",
        "[farm] running: 5/50 tests, 0 failed, 1.0s elapsed",
    ]


def test_a_tty_stream_is_interactive_and_a_plain_one_is_not() -> None:
    assert LiveProgress(FakeTTY()).interactive
    assert not LiveProgress(io.StringIO()).interactive
    assert not LiveProgress(FakeTTY(), interactive=False).interactive
    assert LiveProgress(io.StringIO(), interactive=True).interactive


def test_interactive_shows_counts_failures_elapsed_and_eta_then_restores_the_cursor() -> None:
    out = io.StringIO()
    live = LiveProgress(out, 400, interactive=True)
    live.update(100, 400, 2, 2.0, "running", 6.0)
    live.close()
    live.close()
    raw = out.getvalue()
    text = ANSI.sub("", raw)
    assert "running" in text
    assert "100/400 tests, 2 failed, 2.0s elapsed, ETA 6.0s" in text
    assert raw.index(HIDE_CURSOR) < raw.rindex(SHOW_CURSOR)
    assert raw.rfind(HIDE_CURSOR) < raw.rfind(SHOW_CURSOR)


def test_interactive_close_without_update_writes_nothing() -> None:
    out = io.StringIO()
    live = LiveProgress(out, 10, interactive=True)
    live.close()
    live.close()
    assert out.getvalue() == ""


def test_interactive_escapes_markup_in_the_status() -> None:
    out = io.StringIO()
    with LiveProgress(out, 4, interactive=True) as live:
        live.update(1, 4, 0, 1.0, "[bold]odd[/bold]")
    assert "[bold]odd[/bold]" in ANSI.sub("", out.getvalue())


def test_context_manager_closes_even_when_the_body_raises() -> None:
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt), LiveProgress(out, 4, interactive=True) as live:
        live.update(1, 4, 0, 1.0, "running")
        raise KeyboardInterrupt
    raw = out.getvalue()
    assert raw.rfind(HIDE_CURSOR) < raw.rfind(SHOW_CURSOR)
    size = len(raw)
    live.update(2, 4, 0, 2.0, "running")
    assert len(out.getvalue()) == size


def test_without_an_estimate_no_eta_is_shown_not_a_count_based_zero() -> None:
    """The first run of a suite has no recorded durations: 399 of 400 tests done after 10 s while
    the slow one runs alone is no reason to say "ETA 0.0s"."""
    out = io.StringIO()
    LiveProgress(out, 400, clock=FakeClock()).update(399, 400, 0, 10.0, "running")
    tty = io.StringIO()
    with LiveProgress(tty, 400, interactive=True) as live:
        live.update(399, 400, 0, 10.0, "running")
    assert out.getvalue() == "[farm] running: 399/400 tests, 0 failed, 10.0s elapsed\n"
    assert "ETA" not in ANSI.sub("", tty.getvalue())
    assert progress_line(399, 400, 0, 10.0, "running", 9.0).endswith(", ETA 9.0s")


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.0, "0.0s"), (3.14, "3.1s"), (59.94, "59.9s"), (125.4, "2m05s"), (3725.0, "1h02m"), (-1.0, "0.0s")],
)
def test_short_duration(seconds: float, expected: str) -> None:
    assert short_duration(seconds) == expected


def test_progress_line_matches_the_documented_shape() -> None:
    assert progress_line(120, 400, 2, 3.0, "running", 7.0) == (
        "[farm] running: 120/400 tests, 2 failed, 3.0s elapsed, ETA 7.0s"
    )


# --- -v: a line per test as it finishes, with its worker -------------------------------------------


def test_verbose_line_names_the_worker_progress_word_and_test_as_xdist_does() -> None:
    assert verbose_line("w1@h", 2, 5, "t.py::test_a", "passed") == "[w1@h] [ 40%] PASSED t.py::test_a"
    assert verbose_line("w1@h", 5, 5, "t.py::test_b", "skipped", "no db\nmore") == \
        "[w1@h] [100%] SKIPPED t.py::test_b (no db)"
    assert verbose_line("w", 1, 3, "t.py::c", "xfailed", "bug 12") == "[w] [ 33%] XFAIL t.py::c (bug 12)"
    assert verbose_line("w", 1, 3, "t.py::c", "failed", "AssertionError") == "[w] [ 33%] FAILED t.py::c"
    assert verbose_line("w", 9, 3, "t.py::c", "crashed") == "[w] [100%] CRASHED t.py::c"  # a rerun counts again


def test_echo_writes_whole_lines_to_the_given_stream_when_no_bar_shares_it() -> None:
    out, err = io.StringIO(), io.StringIO()
    with LiveProgress(err, interactive=False) as live:
        live.update(0, 2, 0, 0.1, "running")
        live.echo(["a", "b"], out)
        live.echo([], out)
    assert out.getvalue() == "a\nb\n"


def test_plain_lines_import_no_rich() -> None:
    # The waiting client imports it after its submission, beside the suite's start on the same cores.
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = ("import io, sys\nfrom farm.report.live import LiveProgress\n"
              "with LiveProgress(io.StringIO()) as live:\n    live.update(1, 2, 0, 0.1, 'running')\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
