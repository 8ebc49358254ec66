"""The runner plugin's fence (workers/pytest_plugin/fence.py): a cut the worker asks for while a test
runs is answered at once, and none of the cut runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from workers import records
from workers.backends.local import install_plugin

MODULE = '''
import json, os, pathlib, time

def _ask(tail):  # what the worker does (workers/backends/fence_files.py), from inside the run
    path = os.environ["FARM_FENCE_FILE"]
    pathlib.Path(path + ".tmp").write_text(json.dumps({"seq": 1, "tail": tail}))
    os.replace(path + ".tmp", path)
    reply = pathlib.Path(os.environ["FARM_FENCE_REPLY"])
    for _ in range(800):  # answered while this test still runs (a thread polls the fence)
        if reply.exists():
            pathlib.Path("answer.json").write_text(reply.read_text())
            return
        time.sleep(0.025)
    raise AssertionError("the fence was never answered")

def test_a():
    _ask(TAIL)

def test_b():
    pass

def test_c():
    pass

def test_d():
    pass
'''
IDS = [f"test_f.py::test_{n}" for n in "abcd"]


def _run(tmp_path: Path, tail: list[str]) -> tuple[int, list[dict[str, object]], dict[str, object]]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_f.py").write_text(textwrap.dedent(MODULE).replace("TAIL", json.dumps(tail)), encoding="utf-8")
    install_plugin(tmp_path / "plugin")
    (tmp_path / "tests.json").write_text(json.dumps(IDS), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_", "PYTEST_", "PYTHON"))}
    env.update({"PYTHONPATH": str(tmp_path / "plugin"), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "FARM_MODE": "run",
                "FARM_TESTS_FILE": str(tmp_path / "tests.json"), "FARM_FENCE_FILE": str(tmp_path / "fence.json"),
                "FARM_FENCE_REPLY": str(tmp_path / "fence-reply.json")})
    with open(tmp_path / "records.jsonl", "wb") as sink:
        env["FARM_RECORD_FD"] = str(sink.fileno())
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "farm_runner_plugin", "-p", "no:cacheprovider",
                               "-q"], cwd=project, env=env, pass_fds=(sink.fileno(),), capture_output=True,
                              text=True, timeout=120)
    reader = records.LineReader(IDS)
    lines = [reader.read(x) for x in (tmp_path / "records.jsonl").read_bytes().splitlines()]
    answer = json.loads((project / "answer.json").read_text())
    assert proc.returncode in (0, 1, 5), proc.stdout + proc.stderr
    return proc.returncode, [x for x in lines if x is not None], answer


def test_a_fence_cuts_from_the_first_unstarted_test_of_the_tail_and_none_of_the_cut_runs(tmp_path: Path) -> None:
    code, lines, answer = _run(tmp_path, IDS[2:])
    assert answer == {"seq": 1, "cut": IDS[2:]}
    ran = [x["id"] for x in lines if x["k"] in ("test", "pass")]
    started = [x["id"] for x in lines if x["k"] == "start"]
    assert ran == started == IDS[:2]
    assert code == 0  # the session ends as if the cut had not been collected


def test_a_fence_on_tests_already_started_cuts_nothing(tmp_path: Path) -> None:
    code, lines, answer = _run(tmp_path, IDS[:1])  # test_a itself: running
    assert answer == {"seq": 1, "cut": []}
    assert [x["id"] for x in lines if x["k"] in ("test", "pass")] == IDS
    assert code == 0
