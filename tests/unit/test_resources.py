"""farm.resources: --max-memory's sizes, the memory limit's words, and whose test a leftover process is (pure)."""

from __future__ import annotations

import pytest

from farm.resources import attribute, format_size, is_memory_limit, memory_limit_message, parse_size


@pytest.mark.parametrize(("text", "size"), [
    ("300M", 300 << 20), ("2G", 2 << 30), ("2g", 2 << 30), ("512K", 512 << 10), ("1.5G", 3 << 29),
    ("300MiB", 300 << 20), ("300MB", 300 << 20), (" 64m ", 64 << 20), ("4096", 4096), ("1T", 1 << 40),
])
def test_sizes_read_as_powers_of_1024(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "-1M", "0", "0M", "300X", "3 00M", "1e3", "300M2", "lots"])
def test_a_bad_size_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


@pytest.mark.parametrize("text", ["9" * 400 + "K", "99999999999T", "8388608T"])
def test_a_size_past_what_the_wire_carries_is_refused_in_one_short_line(text: str) -> None:
    with pytest.raises(ValueError, match="too large a size") as caught:
        parse_size(text)
    assert len(str(caught.value)) < 120


@pytest.mark.parametrize(("size", "text"), [
    (200 << 20, "200M"), (2 << 30, "2G"), (318_767_104, "304M"), (1 << 40, "1T"), (12 << 30, "12G"),
    (int(10.5 * (1 << 30)), "10.5G"), (1536 << 20, "1536M"), (4096, "4K"), (1, "1K"),
])
def test_sizes_are_written_short_and_as_parse_size_reads_them(size: int, text: str) -> None:
    assert format_size(size) == text
    assert abs(parse_size(text) - size) <= max(size // 100, 1024)


def test_the_memory_limit_message_names_the_limit_and_the_peak_and_is_recognised() -> None:
    message = memory_limit_message(200 << 20, 301 << 20)
    assert message == "memory limit 200M exceeded (peak 301M)"
    assert is_memory_limit(message)
    assert not is_memory_limit("the runner died while this test ran (killed by SIGKILL)")


STARTS = [(100.0, "t.py::a"), (101.5, "t.py::b"), (103.0, "t.py::c")]


@pytest.mark.parametrize(("created", "test"), [
    (100.0, "t.py::a"), (101.0, "t.py::a"), (101.5, "t.py::b"), (102.9, "t.py::b"), (250.0, "t.py::c"),
    (101.495, "t.py::b"),  # b started within the tick psutil says it began in: b's
    (99.0, ""),  # before any test: the session's (a conftest, the collection)
])
def test_a_process_is_blamed_on_the_test_that_last_started_by_the_end_of_its_tick(created: float,
                                                                                  test: str) -> None:
    assert attribute(created, reversed(STARTS)) == test  # any order


def test_a_test_that_forks_early_after_a_long_one_is_blamed_not_the_long_one() -> None:
    # Seen over SSH: psutil's start (floored to its 10 ms tick) fell 3 ms before the leaking test's
    # start, inside the 3 s test before it.
    starts = [(218.8309, "t.py::holds_300_mb"), (222.0529, "t.py::leaves_a_sleep"), (222.1043, "t.py::passes")]
    assert attribute(222.0499, starts) == "t.py::leaves_a_sleep"


def test_records_without_a_start_are_never_blamed() -> None:
    assert attribute(50.0, [(0.0, "t.py::not_run"), (40.0, "t.py::a")]) == "t.py::a"
    assert attribute(50.0, [(0.0, "t.py::not_run")]) == ""
