"""The embedded farm's start-up: what it does once, not once per process."""

from __future__ import annotations

import os
from pathlib import Path

from support.helpers import FARM, LEAN, copy_fixture, farm

from farm.report.schema import load_report


def test_the_interpreter_is_fingerprinted_once_per_worker_not_per_pool_process(tmp_path: Path) -> None:
    # An interpreter that logs each command line it runs, then is the venv's own python.
    log = tmp_path / "python-calls.log"
    python = tmp_path / "logging-python"
    real = os.path.realpath(Path(FARM).parent / "python")
    python.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec {Path(FARM).parent / "python"} "$@"\n')
    python.chmod(0o755)
    assert os.path.exists(real)
    project = copy_fixture("uneven", tmp_path)
    report_path = tmp_path / "r.json"
    result = farm("submit-suite", str(project), "--local-workers", "2", "--python", str(python),
                  "--json", str(report_path), "--", *LEAN, env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    report = load_report(report_path)
    assert report["summary"]["total"] == 40
    assert len(report["assignments"]) >= 2  # more runs than one pool process's
    calls = log.read_text().splitlines()
    # The collection cache's fingerprint script (workers/collection_cache.py): run by the worker's
    # main process while Celery starts, inherited by both pool processes (the collection's and the
    # other assignment's), where each used to run its own.
    fingerprints = [c for c in calls if c.startswith("-c import json, platform")]
    assert len(fingerprints) == 1, calls
    assert any("pytest_standby.py" in c or c.startswith("-m pytest") for c in calls), calls  # ran under it


def test_a_second_embedded_run_neither_unpacks_nor_compiles_the_bundle_again(tmp_path: Path) -> None:
    # Each embedded farm's directory goes with its command; the compiled project is kept in the
    # user's cache (farm/embedded-trees), so an unchanged suite's next run copies it as it is.
    log = tmp_path / "python-calls.log"
    python = tmp_path / "logging-python"
    python.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec {Path(FARM).parent / "python"} "$@"\n')
    python.chmod(0o755)
    project = copy_fixture("uneven", tmp_path)
    cache = tmp_path / "cache"
    compiles = []
    for n in range(2):
        log.write_text("")
        report_path = tmp_path / f"r{n}.json"
        result = farm("submit-suite", str(project), "--local-workers", "2", "--python", str(python),
                      "--json", str(report_path), "--", *LEAN, env={"XDG_CACHE_HOME": str(cache)})
        assert result.returncode == 0, result.stderr
        assert load_report(report_path)["summary"]["total"] == 40
        compiles.append([c for c in log.read_text().splitlines() if "-m compileall" in c])
    assert compiles[0], "the first run compiles the bundle"
    assert compiles[1] == []
    kept = [p for p in (cache / "farm" / "embedded-trees").iterdir() if not p.name.startswith(".")]
    assert len(kept) == 1
