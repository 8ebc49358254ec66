"""Flower, as `farm up --flower` starts it, shows which suite, assignment and tests each task runs."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from support.helpers import LEAN, farm

from farm.report.schema import load_report


def _tasks(port: int) -> dict[str, dict[str, Any]]:
    """Flower's own task list (its HTTP API), every task it knows of."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tasks?limit=100000", timeout=10) as response:
        tasks: dict[str, dict[str, Any]] = json.loads(response.read())
    return tasks


def _project(root: Path) -> Path:
    project = root / "proj"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_many.py").write_text(
        "import time\n\nimport pytest\n\n\n@pytest.mark.parametrize('n', range(40))\n"
        "def test_sleepy(n):\n    time.sleep(0.05)\n")
    return project


def test_flower_shows_readable_assignments_and_no_bookkeeping_tasks(running_farm, tmp_path: Path) -> None:
    report_path = tmp_path / "r.json"
    result = farm("submit-suite", str(_project(tmp_path)), "--broker", running_farm.broker, "--json",
                  str(report_path), "--", *LEAN, "tests", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = load_report(report_path)
    sid = report["suite_id"]
    assignments = {a["id"]: a for a in report["assignments"]}
    assert len(assignments) >= 2

    # Flower hears of the tasks through events, a moment after they ran.
    deadline = time.monotonic() + 60
    mine: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        tasks = _tasks(running_farm.flower_port)
        mine = [t for t in tasks.values() if t.get("name") == "farm.run_assignment" and sid in str(t.get("args"))]
        if len(mine) == len(assignments) and all(t.get("state") == "SUCCESS" for t in mine):
            break
        time.sleep(0.5)
    assert len(mine) == len(assignments), f"Flower shows {len(mine)} assignments of {len(assignments)}: {mine}"
    for task in mine:
        args = str(task["args"])
        assert "b'" not in args and "\\x" not in args, args  # not msgpack bytes
        aid = next(a for a in assignments if f" {a.removeprefix(sid + '-')} attempt 1:" in args)
        tests = assignments[aid]["tests"]
        assert args.startswith(f"suite {sid} ")
        assert f"{len(tests)} tests: {tests[0]}, {tests[1]}, {tests[2]}, ... (+{len(tests) - 3})" in args, args

    names = [t.get("name") for t in tasks.values()]
    assert names.count("farm.record_batch") == 0, "record batches flood Flower's task list"
    assert names.count("farm.assignment_completed") == 0
    collected = [t for t in tasks.values() if t.get("name") == "farm.suite_collected" and sid in str(t.get("args"))]
    assert [str(t["args"]) for t in collected] == [
        f"suite {sid} collected on {report['collection']['worker']}: 40 tests (pytest exit 0)"]
    collect = [t for t in tasks.values() if t.get("name") == "farm.collect_suite" and sid in str(t.get("args"))]
    assert len(collect) == 1 and f"suite {sid} collect (project" in str(collect[0]["args"])
