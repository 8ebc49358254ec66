"""The embedded farm learns: its second run of a suite is split by what the first measured."""

from __future__ import annotations

import re
from pathlib import Path

from support.helpers import LEAN, copy_fixture, farm

from farm.report.schema import load_report


def _run(project: Path, report: Path, *extra: str, env: dict[str, str]) -> dict:
    result = farm("submit-suite", str(project), "--local-workers", "2", "--json", str(report), *extra,
                  "--", *LEAN, env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    loaded: dict = load_report(report)
    loaded["stderr"] = result.stderr
    return loaded


def _slow_per_assignment(report: dict) -> list[int]:
    """How many of the four slow tests each planned assignment ran, largest first. The tail a
    run-time split gave to an idle slot ("…a001s2.1") counts with the assignment it came from:
    this is about the plan, and whether balancing split it depends on the machine's timing."""
    planned: dict[str, int] = {}
    for a in report["assignments"]:
        root = re.sub(r"(s\d+\.\d+)+$", "", a["id"])
        planned[root] = planned.get(root, 0) + sum("test_slow" in t for t in a["tests"])
    return sorted(planned.values(), reverse=True)


def test_second_embedded_run_is_split_by_durations_per_project_until_cleared(tmp_path: Path) -> None:
    project = copy_fixture("uneven", tmp_path)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    # First run: nothing recorded, so contiguous cuts by count: 36 quick tests first, then 4 slow
    # ones of 0.5 s, which all land in the second of two assignments.
    first = _run(project, tmp_path / "r1.json", env=env)
    assert _slow_per_assignment(first) == [4, 0]
    saved = list((tmp_path / "cache" / "farm" / "history").iterdir())
    assert len(saved) == 1 and saved[0].name.startswith("uneven-")
    # Second run, a new embedded farm: the durations came back from the cache, and LPT gives each
    # assignment two of the slow tests.
    second = _run(project, tmp_path / "r2.json", env=env)
    assert _slow_per_assignment(second) == [2, 2]
    # The progress line: no ETA without durations (a count-based one said 0.0s while the slow
    # assignment ran alone), one from the plan's expected times once they are known.
    assert "ETA" not in first["stderr"]
    assert re.search(r"\[farm\] running: .*, ETA [0-9.]+s", second["stderr"]), second["stderr"]
    # --project keys the history: another name starts from nothing.
    other = _run(project, tmp_path / "r3.json", "--project", "other-name", env=env)
    assert _slow_per_assignment(other) == [4, 0]

    listed = farm("history", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("other-name: 40 test durations") and lines[1].startswith("uneven: 40 test durations")
    path = farm("history", "--path", env=env)
    assert path.stdout.strip() == str(tmp_path / "cache" / "farm" / "history")

    cleared = farm("history", "--clear", "uneven", env=env)
    assert cleared.returncode == 0 and "removed the history of 'uneven' (1 file" in cleared.stdout
    gone = farm("history", "uneven", env=env)
    assert gone.returncode == 4 and gone.stderr.startswith("farm: error: no history of project 'uneven'"), gone.stderr
    again = _run(project, tmp_path / "r4.json", env=env)
    assert _slow_per_assignment(again) == [4, 0]  # forgotten: split by count again
    assert farm("history", "--clear", env=env).returncode == 0
    assert list((tmp_path / "cache" / "farm" / "history").iterdir()) == []


def test_a_corrupt_history_file_is_one_warning_and_the_run_goes_on(tmp_path: Path) -> None:
    project = copy_fixture("uneven", tmp_path)
    env = {"FARM_HISTORY_DIR": str(tmp_path / "h")}
    _run(project, tmp_path / "r1.json", env=env)
    (saved,) = (tmp_path / "h").iterdir()
    saved.write_bytes(b"\x00garbage")
    result = farm("submit-suite", str(project), "--local-workers", "2", "--", *LEAN, env=env)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "ignoring the history file" in warnings[0], result.stderr
    assert "Traceback" not in result.stderr
    listed = farm("history", env=env)
    assert listed.stdout.startswith("uneven: 40 test durations")  # rewritten by that run
