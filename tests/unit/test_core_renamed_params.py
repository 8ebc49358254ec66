"""Tests whose parameter ids change between collections: matched by function and position, or explained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from farm.nodeids import param_positions, split_params
from workers import records
from workers.backends.local import install_plugin
from workers.pytest_plugin import renamed_params, run_mode

F = "tests/test_t.py::test_f"


def test_split_params_separates_the_function_from_its_parameter_id() -> None:
    assert split_params("tests/t.py::TestC::test_m[1-a]") == ("tests/t.py::TestC::test_m", "1-a")
    assert split_params("tests/t[x].py::test_m[a[b]]") == ("tests/t[x].py::test_m", "a[b]")
    assert split_params("tests/t.py::test_plain") == ("tests/t.py::test_plain", None)
    assert split_params("tests/t.py") == ("tests/t.py", None)


@given(st.text(alphabet="ab[]:/.-_ ", max_size=30))
def test_the_plugin_splits_ids_exactly_as_farm_does(nodeid: str) -> None:
    assert renamed_params.split_params(nodeid) == split_params(nodeid)


def test_param_positions_count_each_functions_parametrized_items_in_order() -> None:
    order = [f"{F}[a]", "tests/test_t.py::test_plain", f"{F}[b]", "tests/test_t.py::test_g[x]", f"{F}[c]"]
    assert param_positions(order) == {f"{F}[a]": (0, 3), f"{F}[b]": (1, 3), f"{F}[c]": (2, 3),
                                      "tests/test_t.py::test_g[x]": (0, 1)}


def test_a_renamed_item_is_matched_by_function_and_position() -> None:
    planned = [f"{F}[09:00:01]", f"{F}[09:00:02]", f"{F}[09:00:03]"]
    collected = [f"{F}[09:00:07]", f"{F}[09:00:08]", f"{F}[09:00:09]"]
    positions = param_positions(planned)
    wanted = set(planned[1:])  # this assignment holds the last two
    ran_as, unmatched = renamed_params.match_renamed(sorted(wanted), positions, collected, wanted)
    assert ran_as == {f"{F}[09:00:08]": f"{F}[09:00:02]", f"{F}[09:00:09]": f"{F}[09:00:03]"}
    assert unmatched == {}


def test_no_match_when_the_function_has_another_number_of_items() -> None:
    planned = [f"{F}[1]", f"{F}[2]"]
    collected = [f"{F}[7]", f"{F}[8]", f"{F}[9]", "tests/test_t.py::test_other"]
    ran_as, unmatched = renamed_params.match_renamed(planned, param_positions(planned), collected, set(planned))
    assert ran_as == {}
    assert unmatched == {t: collected[:3] for t in planned}


def test_no_match_when_the_planned_ids_it_did_collect_moved() -> None:
    planned = [f"{F}[a]", f"{F}[b]", f"{F}[c]"]
    collected = [f"{F}[b]", f"{F}[c]", f"{F}[d]"]  # a removed, d added: b and c moved up
    wanted = set(planned)
    ran_as, unmatched = renamed_params.match_renamed([f"{F}[a]"], param_positions(planned), collected, wanted)
    assert ran_as == {} and unmatched == {f"{F}[a]": collected}


def test_no_match_for_a_test_without_parameters_the_module_is_listed() -> None:
    gone = "tests/test_t.py::test_renamed_function"
    collected = ["tests/test_t.py::test_new_name", "tests/test_u.py::test_x"]
    ran_as, unmatched = renamed_params.match_renamed([gone], {}, collected, {gone})
    assert ran_as == {} and unmatched == {gone: ["tests/test_t.py::test_new_name"]}


def test_the_error_message_lists_what_the_runner_collected_and_what_the_plan_had() -> None:
    why = records.missing_why(f"{F}[1]", [f"{F}[7]", f"{F}[8]"], 1, 2)
    assert why == (f"not collected on the worker; for {F} it collected 3 (the plan had 2): {F}[7], {F}[8] and 1 more "
                   "(do the parameter ids change between collections, or was it collected with other options?)")
    assert records.missing_why(f"{F}[1]", []) == \
        "not collected on the worker (was it collected with different options or files?)"
    module = records.missing_why("tests/test_t.py::test_gone", ["tests/test_t.py::test_new"])
    assert module.startswith("not collected on the worker; for tests/test_t.py it collected 1: "
                             "tests/test_t.py::test_new")


def test_a_test_line_with_ran_as_becomes_a_record_under_the_planned_id() -> None:
    record = records.test_record({"k": "test", "id": f"{F}[1]", "ran_as": f"{F}[7]", "t": 1.0, "duration_s": 0.1,
                                  "phases": {"call": {"cat": "passed"}}})
    assert (record.test_id, record.ran_as, record.outcome.value) == (f"{F}[1]", f"{F}[7]", "passed")


# The plugin under a real pytest, with a module whose parameters are made from the time.

STAMPED = '''
    import datetime
    import os
    from pathlib import Path

    import pytest

    NOW = datetime.datetime.now()
    _MARK = Path(os.environ["MARK_DIR"]) / "collected-once"
    GROW = 3 if _MARK.exists() else 2
    _MARK.touch()

    @pytest.mark.parametrize("when", [NOW + datetime.timedelta(seconds=i) for i in range(4)], ids=str)
    def test_stamped(when):
        assert when

    @pytest.mark.parametrize("when", [NOW + datetime.timedelta(seconds=i) for i in range(GROW)], ids=str)
    def test_grows(when):
        assert when

    def test_plain():
        pass
'''


def _pytest(root: Path, mode: str, tests_file: Any = None) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_", "PYTEST_", "PYTHON"))}
    env.update({"PYTHONPATH": str(root / "plugin"), "PYTHONDONTWRITEBYTECODE": "1", "FARM_MODE": mode,
                "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "MARK_DIR": str(root)})
    if tests_file is not None:
        (root / "tests.json").write_text(json.dumps(tests_file), encoding="utf-8")
        env["FARM_TESTS_FILE"] = str(root / "tests.json")
    out = root / f"records-{mode}.jsonl"
    with open(out, "wb") as sink:
        env["FARM_RECORD_FD"] = str(sink.fileno())
        subprocess.run([sys.executable, "-m", "pytest", "-p", "farm_runner_plugin", "-p", "no:cacheprovider", "-q",
                        *(["--collect-only"] if mode == "collect" else [])], cwd=root / "project", env=env,
                       pass_fds=(sink.fileno(),), capture_output=True, timeout=120, check=False)
    reader = records.LineReader(tests_file["ids"] if tests_file is not None else [])
    return [obj for obj in map(reader.read, out.read_bytes().splitlines()) if obj is not None]


def test_the_plugin_runs_renamed_items_under_their_planned_ids(tmp_path: Path) -> None:
    (tmp_path / "project" / "tests").mkdir(parents=True)
    (tmp_path / "project" / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "project" / "tests" / "test_t.py").write_text(textwrap.dedent(STAMPED))
    install_plugin(tmp_path / "plugin")
    plan = [obj["id"] for obj in _pytest(tmp_path, "collect") if obj["k"] == "item"]
    positions = param_positions(plan)
    lines = _pytest(tmp_path, "run", {"ids": plan, "positions": [list(positions.get(t, (-1, 0))) for t in plan]})
    tests = {obj["id"]: obj for obj in lines if obj["k"] in ("test", "pass")}  # "pass": a plain pass, compact
    stamped = [t for t in plan if "test_stamped" in t]
    assert len(stamped) == 4 and set(stamped) <= set(tests), "every renamed test ran, under its planned id"
    for test_id in stamped:
        ran_as = tests[test_id]["ran_as"]
        assert ran_as != test_id and ran_as.startswith("tests/test_t.py::test_stamped[")
        assert tests[test_id]["phases"]["call"]["cat"] == "passed"
    assert "ran_as" not in tests["tests/test_t.py::test_plain"]
    starts = [obj for obj in lines if obj["k"] == "start"]
    assert {s["id"] for s in starts} == set(tests), "start lines name the planned ids too"
    missing = [obj for obj in lines if obj["k"] == "missing"]
    grows = [t for t in plan if "test_grows" in t]
    assert sorted(m["id"] for m in missing) == sorted(grows)  # 2 planned, 3 collected: no sound match
    for m in missing:
        assert m["planned"] == 2 and len(m["collected"]) == 3 and m["more"] == 0
        assert all(c.startswith("tests/test_t.py::test_grows[") and c not in grows for c in m["collected"])


def test_the_tests_file_carries_positions_only_when_known() -> None:
    from workers.backends.base import RunRequest, tests_file_text

    plain = RunRequest("run", Path("b.tgz"), (), (f"{F}[1]", "t.py::test_x"), "a000")
    assert run_mode.read_tests_file(json.loads(tests_file_text(plain))) == ([f"{F}[1]", "t.py::test_x"], {})
    placed = RunRequest("run", Path("b.tgz"), (), (f"{F}[1]", "t.py::test_x"), "a000", positions=((1, 2), (-1, 0)))
    assert run_mode.read_tests_file(json.loads(tests_file_text(placed))) == (
        [f"{F}[1]", "t.py::test_x"], {f"{F}[1]": (1, 2)})
