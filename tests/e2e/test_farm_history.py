"""`farm history PROJECT [--json]` after three real runs of a suite with a test that flips, on the
embedded farm (its saved history) and on `farm up` (its Redis)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.helpers import LEAN, farm

from farm.cluster import free_port

FLIPPER = '''
import os, pathlib, time

def test_flips():
    counter = pathlib.Path(os.environ["HISTORY_FLIP_COUNTER"])  # outside the project: one bundle digest
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    assert n % 2 == 1, f"run {n + 1} fails"

def test_slow():
    time.sleep(0.3)

def test_quick():
    pass
'''
FLIPS = "tests/test_flip.py::test_flips"
SLOW = "tests/test_flip.py::test_slow"


def _project(root: Path) -> Path:
    project = root / "flipper"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_flip.py").write_text(FLIPPER)
    (project / "pytest.ini").write_text("[pytest]\n")
    return project


def _three_runs(project: Path, env: dict[str, str], *where: str) -> None:
    codes = []
    for _ in range(3):
        result = farm("submit-suite", str(project), *where, "--", *LEAN, env=env)
        assert "Traceback" not in result.stderr, result.stderr
        codes.append(result.returncode)
    assert codes == [1, 0, 1], codes  # test_flips fails on runs 1 and 3


def _check_history(env: dict[str, str], *where: str) -> None:
    shown = farm("history", "flipper", *where, env=env)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert text.startswith("flipper: 3 runs (the last 50 are kept), 3 tests timed"), text
    assert len(re.findall(r"^  s-\S+  \S+ \S+  finished \(exit [01]\)", text, re.M)) == 3, text
    assert re.search(rf"^   67%  2 flips, 0 flaky in 3 runs  {re.escape(FLIPS)}$", text, re.M), text
    slowest = text.split("slowest tests")[1].splitlines()[1]
    assert slowest.endswith(f"(3 runs)  {SLOW}"), text
    assert re.search(r"^wall time: [▁-█]{3}  median [0-9.]+s, last [0-9.]+s", text, re.M), text

    doc = json.loads(farm("history", "flipper", "--json", *where, env=env).stdout)
    runs = doc["runs"]
    assert [r["exit_code"] for r in runs] == [1, 0, 1] and [r["status"] for r in runs] == ["finished"] * 3
    assert len({r["bundle_digest"] for r in runs}) == 1 and all(r["tests"] == 3 for r in runs)
    assert runs[0]["summary"] == {"passed": 2, "failed": 1} and runs[1]["summary"] == {"passed": 3}
    assert doc["flaky"] == [{"id": FLIPS, "rate": 0.6667, "flaky_runs": 0, "flips": 2, "runs": 3}]
    top = doc["slowest"][0]
    assert top["id"] == SLOW and top["runs"] == 3 and 0.3 <= top["p50_s"] <= top["p95_s"]
    assert doc["kept"] == 50 and len(doc["wall"]["walls_s"]) == 3

    listed = farm("history", *where, env=env)
    assert listed.returncode == 0 and re.search(r"^flipper: .*3 runs, last: s-\S+ ", listed.stdout, re.M), listed
    (project,) = json.loads(farm("history", "--json", *where, env=env).stdout)["projects"]
    assert (project["project"], project["runs"], project["last_run"]["exit_code"]) == ("flipper", 3, 1), project
    unknown = farm("history", "no-such-project", *where, env=env)
    assert unknown.returncode == 4 and unknown.stdout == "", unknown
    assert unknown.stderr.startswith("farm: error: no ") and unknown.stderr.count("\n") == 1, unknown.stderr


def test_history_of_three_embedded_runs_shows_the_flipping_test_and_the_slowest(tmp_path: Path) -> None:
    project = _project(tmp_path)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HISTORY_FLIP_COUNTER": str(tmp_path / "counter")}
    _three_runs(project, env, "--local-workers", "2")
    _check_history(env)


def test_history_of_three_runs_on_farm_up_is_read_from_its_redis(tmp_path: Path,
                                                                   farm_up: Callable[..., Any]) -> None:
    project = _project(tmp_path)
    up = farm_up("--workers", "1", "--slots", "2", env={"HISTORY_FLIP_COUNTER": str(tmp_path / "counter")})
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}  # no saved history: it is the farm's
    _three_runs(project, env, "--broker", up.broker)
    _check_history(env, "--broker", up.broker)
    assert farm("history", "flipper", env=env).returncode == 4  # nothing saved by an embedded run
    # FARM_BROKER_URL names the farm as --broker does; --path still means the embedded farm's saved history.
    by_env = farm("history", "flipper", "--json", env={**env, "FARM_BROKER_URL": up.broker})
    assert len(json.loads(by_env.stdout)["runs"]) == 3, by_env.stderr
    path = farm("history", "--path", env={**env, "FARM_BROKER_URL": up.broker})
    assert path.returncode == 0 and path.stdout.strip() == str(tmp_path / "cache" / "farm" / "history"), path
    assert farm("history", "--path", "--broker", up.broker, env=env).returncode == 4


def test_history_of_an_unreachable_farm_is_one_line() -> None:
    result = farm("history", "flipper", "--broker", f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode == 4 and result.stderr.startswith("farm: error: cannot reach the broker at ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
