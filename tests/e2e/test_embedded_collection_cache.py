"""The embedded farm keeps its collection cache between runs: an unchanged suite is planned without
a collection session (the JSON report's collection then took 0 s), a changed one is collected again."""

from __future__ import annotations

from pathlib import Path

from support.helpers import LEAN, copy_fixture, farm

from farm.report.schema import load_report


def _run(project: Path, report: Path, env: dict[str, str]) -> dict:
    result = farm("submit-suite", str(project), "--local-workers", "2", "--json", str(report), "--", *LEAN, env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    loaded: dict = load_report(report)
    loaded["stderr"] = result.stderr
    return loaded


def _outcomes(report: dict) -> list[tuple[str, str]]:
    return sorted((t["id"], t["outcome"]) for t in report["tests"])


def test_a_second_embedded_run_is_planned_from_the_saved_collection_until_a_file_changes(tmp_path: Path) -> None:
    project = copy_fixture("uneven", tmp_path)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = _run(project, tmp_path / "r1.json", env)
    assert first["collection"]["duration_s"] > 0  # nothing saved yet: a collection session ran
    saved = list((tmp_path / "cache" / "farm" / "collections").iterdir())
    assert len(saved) == 1 and saved[0].name.startswith("uneven_")  # NAME@ENVIRONMENT, made file-safe

    # A new embedded farm (its own Redis): the collection comes from the saved cache, and the
    # report says the same as the first's, each test once.
    second = _run(project, tmp_path / "r2.json", env)
    assert second["collection"]["duration_s"] == 0.0
    assert _outcomes(second) == _outcomes(first) and len(_outcomes(first)) == 40
    assert second["summary"] == first["summary"]

    # A changed test file is another bundle: collected afresh, and the new test runs.
    quick = project / "tests" / "test_a_quick.py"
    quick.write_text(quick.read_text() + "\n\ndef test_added():\n    pass\n")
    third = _run(project, tmp_path / "r3.json", env)
    assert third["collection"]["duration_s"] > 0
    assert ("tests/test_a_quick.py::test_added", "passed") in _outcomes(third) and len(third["tests"]) == 41
    fourth = _run(project, tmp_path / "r4.json", env)  # and that collection is what the next run uses
    assert fourth["collection"]["duration_s"] == 0.0 and _outcomes(fourth) == _outcomes(third)

    # The runners inherit the submitting environment, which a collection may read and the key does
    # not name: under another one the suite is collected (and kept apart).
    other = _run(project, tmp_path / "r5.json", {**env, "SUITE_SIZE": "9"})
    assert other["collection"]["duration_s"] > 0
    files = sorted(p.name for p in (tmp_path / "cache" / "farm" / "collections").iterdir())
    assert len(files) == 2
    # FARM_COLLECTION_CACHE=0 turns it off here too: collected, nothing saved.
    off = _run(project, tmp_path / "r6.json", {**env, "FARM_COLLECTION_CACHE": "0"})
    assert off["collection"]["duration_s"] > 0 and len(off["tests"]) == 41
    assert sorted(p.name for p in (tmp_path / "cache" / "farm" / "collections").iterdir()) == files


def test_a_corrupt_collection_cache_file_is_one_warning_and_the_run_collects(tmp_path: Path) -> None:
    project = copy_fixture("uneven", tmp_path)
    env = {"FARM_COLLECTIONS_DIR": str(tmp_path / "c")}
    _run(project, tmp_path / "r1.json", env)
    (saved,) = (tmp_path / "c").iterdir()
    saved.write_bytes(b"\x00garbage")
    second = _run(project, tmp_path / "r2.json", env)
    warnings = [line for line in second["stderr"].splitlines() if "warning" in line]
    assert len(warnings) == 1 and "ignoring the collection cache file" in warnings[0], second["stderr"]
    assert second["collection"]["duration_s"] > 0 and len(second["tests"]) == 40
    third = _run(project, tmp_path / "r3.json", env)  # the file was rewritten by that run
    assert third["collection"]["duration_s"] == 0.0
    assert "warning" not in third["stderr"]
