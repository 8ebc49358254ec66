"""The benchmark harness's pure parts (bench/): farm command parsing, targets, suite generators,
roles of a cluster's processes, the external scripts' JSON line. No benchmark is run here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bench import core, external, farmcmd, sampler, suites


def test_env_words_become_the_farm_environment_with_absolute_paths() -> None:
    farm = farmcmd.parse("before", "env PYTHONPATH=rel/tree:/abs FOO=1 /usr/bin/python3 -m farm", ["BAR=2"])
    assert farm.argv == ["/usr/bin/python3", "-m", "farm"]
    assert farm.env == {"PYTHONPATH": f"{os.path.abspath('rel/tree')}:/abs", "FOO": "1", "BAR": "2"}


def test_a_farm_command_of_only_assignments_is_refused() -> None:
    with pytest.raises(ValueError):
        farmcmd.parse("farm", "PYTHONPATH=/x", [])
    with pytest.raises(ValueError):
        farmcmd.parse("farm", "farm", ["not-an-assignment"])


def test_target_status() -> None:
    assert core.target("t", 1.0, 0.9)["status"] == "met"
    assert core.target("t", 1.0, 1.1)["status"] == "missed"
    assert core.target("t", 1.0, None)["status"] == "not measured"


def test_roles_by_command_line() -> None:
    assert sampler.role(["/py", "-m", "coordinator", "--broker", "x"]) == "coordinator"
    assert sampler.role(["/py", "-m", "workers", "--slots", "2"]) == "worker"
    assert sampler.role(["/usr/bin/redis-server", "*:0"]) == "redis"
    assert sampler.role(["/py", "-m", "farm", "up"]) is None


def test_generators_write_the_counts_they_say(tmp_path: Path) -> None:
    assert suites.parametrized(tmp_path / "p", 3, 7) == 21
    assert len(list((tmp_path / "p").glob("test_*.py"))) == 3
    assert suites.imports(tmp_path / "i", 4, 5, 0.0, 0.0) == 20
    assert suites.small(tmp_path / "s", 31, 10) == 31
    text = "".join(p.read_text() for p in (tmp_path / "s").glob("test_*.py"))
    assert text.count("def test_") >= 10


def test_the_last_json_object_of_an_external_script_wins() -> None:
    lines = ['{"scenario": "old"}', "noise", '{"scenario": "planning", "rows": []}', "a warning on stderr"]
    assert external._last_object(lines)["scenario"] == "planning"
    with pytest.raises(ValueError):
        external._last_object(["no json here"])


def _bench(tmp_path: Path) -> core.Bench:
    farm = farmcmd.FarmCommand("farm", [sys.executable, "-m", "farm"], tree={"python": sys.executable})
    return core.Bench(sys.executable, [farm], 1, 60.0, 60.0, tmp_path, dict(os.environ))


def test_an_external_script_folds_its_rows_and_targets_in(tmp_path: Path) -> None:
    (tmp_path / "planning.py").write_text(
        "import json\nprint('progress')\n"
        'print(json.dumps({"scenario": "planning", "rows": [{"label": "plan 1e6", "value": 4.2, "unit": "s"}],'
        ' "targets": [{"text": "(g) ≤ 10 s", "limit": 10, "value": 4.2, "status": "met"}]}))\n'
    )
    info = external.external(_bench(tmp_path), "planning", tmp_path)
    assert info["rows"] == [{"label": "plan 1e6", "value": 4.2, "unit": "s"}]
    assert [(t["text"], t["status"]) for t in info["targets"]] == [("(g) ≤ 10 s", "met")]


def test_an_absent_external_script_is_not_measured(tmp_path: Path) -> None:
    info = external.external(_bench(tmp_path), "results", tmp_path)
    assert [t["status"] for t in info["targets"]] == ["not measured"]
