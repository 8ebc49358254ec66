"""The pytest options farm acts on are read from pytest args as pytest's own parser reads them."""

from __future__ import annotations

import pytest

from farm.model import SessionInfo
from farm.pytest_options import effective, parse, report_chars


@pytest.mark.parametrize(
    ("args", "maxfail"),
    [
        ([], 0), (["-x"], 1), (["--exitfirst"], 1), (["--maxfail=3"], 3), (["--maxfail", "4"], 4),
        (["-vx"], 1), (["-x", "--maxfail=5"], 5), (["--maxfail=5", "-x"], 1), (["--maxfail=oops"], 0),
        (["-k", "x"], 0), (["-kx"], 0), (["-p", "xdist", "tests"], 0), (["--", "-x"], 0),
    ],
)
def test_maxfail_as_pytest_takes_it(args: list[str], maxfail: int) -> None:
    assert parse(args).maxfail == maxfail


@pytest.mark.parametrize(
    ("args", "verbose"),
    [([], 0), (["-v"], 1), (["-vv"], 2), (["-v", "--verbose"], 2), (["-q"], -1), (["-qq"], -2),
     (["-vvq"], 1), (["--verbosity=3"], 3), (["--verbosity", "2", "-v"], 3), (["-k", "vv"], 0), (["-m", "v"], 0)],
)
def test_verbosity_counts_v_up_and_q_down(args: list[str], verbose: int) -> None:
    assert parse(args).verbose == verbose


@pytest.mark.parametrize(
    ("args", "chars"),
    [([], "fE"), (["-ra"], "a"), (["-r", "A"], "A"), (["-rfEs"], "fEs"), (["-vrx"], "x"), (["-ra", "-rN"], "N")],
)
def test_report_chars_take_the_rest_of_the_cluster_or_the_next_argument(args: list[str], chars: str) -> None:
    assert parse(args).reportchars == chars


def test_tb_durations_and_their_minimum() -> None:
    info = parse(["--tb=line", "--durations", "5", "--durations-min=0.5"])
    assert (info.tbstyle, info.durations, info.durations_min) == ("line", 5, 0.5)
    assert parse(["--tb", "no"]).tbstyle == "no"
    assert parse(["--tb=sideways"]).tbstyle == "auto"  # pytest refuses it; farm keeps its default
    assert parse(["--durations=0"]).durations == 0
    assert parse([]).durations == -1 and parse([]).durations_min == -1.0


def test_a_value_option_does_not_swallow_the_next_flag_when_given_with_equals() -> None:
    assert parse(["--tb=short", "-x"]).maxfail == 1
    assert parse(["--junit-xml", "-x.xml", "-v"]).verbose == 1  # the value of --junit-xml is skipped


def test_args_apply_over_a_base_as_the_command_line_over_addopts() -> None:
    base = SessionInfo(verbose=1, reportchars="a", maxfail=2)
    assert parse(["-q"], base) == SessionInfo(verbose=0, reportchars="a", maxfail=2)


def test_the_workers_report_wins_over_parsing_when_there_is_one() -> None:
    reported = SessionInfo(maxfail=3, python="3.11.2")
    assert effective(reported, ["-x"]) == reported
    assert effective(SessionInfo(), ["-x"]).maxfail == 1  # a worker that could not say


@pytest.mark.parametrize(
    ("chars", "opts"),
    [("fE", "fE"), ("a", "sxXEf"), ("A", "PpsxXEf"), ("fEN", ""), ("Nf", "f"), ("FS", "fs"), ("ffE", "fE"),
     ("af", "sxXEf")],
)
def test_report_chars_are_read_as_pytests_getreportopt(chars: str, opts: str) -> None:
    assert report_chars(chars) == opts
