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


RUNS = [(100.0, 101.0, "t.py::a"), (101.5, 102.5, "t.py::b"), (103.0, 104.0, "t.py::c")]


@pytest.mark.parametrize(("created", "test"), [
    (100.0, "t.py::a"), (100.5, "t.py::a"), (101.5, "t.py::b"), (102.49, "t.py::b"), (103.5, "t.py::c"),
    (101.2, "t.py::a"),  # between a and b: the test that last started before it (a fixture's teardown)
    (101.495, "t.py::b"),  # its tick (psutil's start, 10 ms) overlaps b more than nothing
    (250.0, "t.py::c"),
    (99.0, ""),  # before any test: the session's (a conftest, the collection)
])
def test_a_process_is_blamed_on_the_test_running_in_its_tick_else_the_last_started(created: float,
                                                                                   test: str) -> None:
    assert attribute(created, reversed(RUNS)) == test  # any order


def test_of_short_tests_sharing_a_tick_the_one_that_spent_longest_in_it_is_blamed() -> None:
    # psutil says the process began at 10.000 (its tick: 10.000-10.010); three tests ran then, the
    # second forked it (a fork takes a millisecond or more, a trivial test a tenth of one).
    runs = [(10.0005, 10.0007, "t.py::quick"), (10.0008, 10.0038, "t.py::forks"), (10.0040, 10.0042, "t.py::next")]
    assert attribute(10.0, runs) == "t.py::forks"


def test_records_without_a_start_are_never_blamed() -> None:
    assert attribute(50.0, [(0.0, 0.0, "t.py::not_run"), (40.0, 41.0, "t.py::a")]) == "t.py::a"
    assert attribute(50.0, [(0.0, 0.0, "t.py::not_run")]) == ""
