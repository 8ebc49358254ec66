"""The runner plugin under a real pytest: what it reports in collect and run mode, line by line."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from farm.outcomes import Outcome
from workers import records
from workers.backends.local import install_plugin
from workers.pytest_plugin.report_text import cap

MAIN = "tests/test_main.py"

SOURCES = {
    "pytest.ini": "[pytest]\n",
    "tests/test_main.py": '''
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture boom")

        @pytest.fixture
        def bad_teardown():
            yield
            raise OSError("teardown boom")

        def test_pass():
            print("output of a passing test")

        def test_fail():
            print("head-" + "x" * 500 + "-tail")
            assert 1 == 2

        @pytest.mark.skip(reason="not on this host")
        def test_skip_mark():
            pass

        @pytest.mark.xfail(reason="known bug 12")
        def test_xfail():
            raise ZeroDivisionError

        @pytest.mark.xfail(reason="fixed already?")
        def test_xpass():
            pass

        def test_setup_error(broken):
            pass

        def test_teardown_error(bad_teardown):
            pass

        def test_subtests(subtests):
            for i in range(3):
                with subtests.test(msg="sub", i=i):
                    assert i != 1, "sub one failed"

        @pytest.mark.parametrize("v", ["a b", "\u00fc[x]"])
        def test_param(v):
            assert v

        def test_not_assigned():
            raise AssertionError("must not run")

        @pytest.mark.xfail(run=False, reason="not now")
        def test_xfail_norun():
            pass
    ''',
    "tests/test_other.py": '''
        def test_other_file():
            raise AssertionError("must not run")
    ''',
    "tests/test_\u00fcn\u00ef.py": '''
        def test_ok():
            pass
    ''',
    "tests/test_skipmod.py": '''
        import pytest
        pytest.skip("whole module skipped", allow_module_level=True)
    ''',
    "tests/test_broken.py": '''
        1 / 0
    ''',
}

ASSIGNED = [
    f"{MAIN}::test_pass", f"{MAIN}::test_fail", f"{MAIN}::test_skip_mark", f"{MAIN}::test_xfail",
    f"{MAIN}::test_xpass", f"{MAIN}::test_setup_error", f"{MAIN}::test_teardown_error",
    f"{MAIN}::test_subtests", f"{MAIN}::test_param[a b]", f"{MAIN}::test_param[\\xfc[x]]",
    f"{MAIN}::test_xfail_norun",
]
UNICODE_FILE = "tests/test_\u00fcn\u00ef.py::test_ok"
UNKNOWN = f"{MAIN}::test_does_not_exist"
OUTPUT_CAP = 100


@dataclass
class Run:
    code: int
    lines: list[dict[str, Any]]
    output: str

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.lines if obj["k"] == kind]

    def tests(self) -> dict[str, dict[str, Any]]:
        return {obj["id"]: obj for obj in self.of("test")}


def make_project(root: Path) -> Path:
    for rel, text in SOURCES.items():
        path = root / "project" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    install_plugin(root / "plugin")
    return root


def run_pytest(root: Path, mode: str, test_ids: list[str] | None = None, *args: str,
               extra_env: dict[str, str] | None = None) -> Run:
    """Run pytest with the plugin in `root/project`, as the local backend does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_", "PYTEST_", "PYTHON"))}
    env.update(extra_env or {})
    env.update({
        "PYTHONPATH": str(root / "plugin"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "FARM_MODE": mode,
        "FARM_OUTPUT_CAP": str(OUTPUT_CAP),
    })
    if test_ids is not None:
        tests_file = root / f"tests-{len(list(root.glob('tests-*.json')))}.json"
        tests_file.write_text(json.dumps(test_ids), encoding="utf-8")
        env["FARM_TESTS_FILE"] = str(tests_file)
    record_path = root / f"records-{mode}-{len(list(root.glob('records-*')))}.jsonl"
    with open(record_path, "wb") as sink:
        env["FARM_RECORD_FD"] = str(sink.fileno())
        argv = [sys.executable, "-m", "pytest", "-p", "farm_runner_plugin", "-p", "no:cacheprovider",
                "-p", "no:hypothesispytest", *args]
        proc = subprocess.run(argv, cwd=root / "project", env=env, pass_fds=(sink.fileno(),),
                              capture_output=True, text=True, timeout=120)
    raw = record_path.read_bytes().splitlines()
    reader = records.LineReader(test_ids or [])
    lines = [reader.read(x) for x in raw]
    assert None not in lines, f"every line the plugin writes is well formed: {raw}"
    return Run(proc.returncode, [as_test_line(obj, lines) for obj in lines], proc.stdout + proc.stderr)  # type: ignore[arg-type]


def as_test_line(obj: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
    """A compact pass as the JSON "test" line it stands for (so the tests below read one form)."""
    if obj["k"] != "pass":
        return obj
    started = [o["t"] for o in lines if o["k"] == "start" and o["id"] == obj["id"]][-1]
    setup, call, teardown = obj["s"]
    return {"k": "test", "id": obj["id"], "t": started, "duration_s": 0.0 + setup + call + teardown,
            "phases": {"setup": {"cat": "", "s": setup}, "call": {"cat": "passed", "s": call},
                       "teardown": {"cat": "", "s": teardown}}, "sections": [], "compact": True}


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = make_project(tmp_path_factory.mktemp("collect"))
    return run_pytest(root, "collect", None, "--collect-only", "-q")


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = make_project(tmp_path_factory.mktemp("run"))
    return run_pytest(root, "run", [*ASSIGNED, UNKNOWN, ASSIGNED[0], UNICODE_FILE], "-q")


# --- collect mode -------------------------------------------------------------------------------


def test_collect_mode_lists_every_item_in_collection_order(collected: Run) -> None:
    items = [obj["id"] for obj in collected.of("item")]
    main = [i for i in items if i.startswith(MAIN)]
    assert main == [*ASSIGNED[:-1], f"{MAIN}::test_not_assigned", f"{MAIN}::test_xfail_norun"]
    assert items == [*main, "tests/test_other.py::test_other_file", UNICODE_FILE]
    assert collected.of("test") == [] and collected.of("start") == [], "nothing runs"


def test_collect_mode_reports_a_module_level_skip(collected: Run) -> None:
    (skip,) = [obj for obj in collected.of("collect") if obj["cat"] == "skipped"]
    assert skip["id"] == "tests/test_skipmod.py"
    assert skip["msg"] == "whole module skipped"
    record = records.collect_record(skip)
    assert (record.outcome, record.phase) == (Outcome.SKIPPED, "collect")


def test_collect_mode_reports_a_collection_error(collected: Run) -> None:
    (error,) = [obj for obj in collected.of("collect") if obj["cat"] == "error"]
    assert error["id"] == "tests/test_broken.py"
    assert error["msg"] == "ZeroDivisionError: division by zero"
    assert "1 / 0" in error["longrepr"]
    assert collected.code == 2, "pytest's own exit code for a collection error"


def test_collect_result_folds_a_real_collection(collected: Run) -> None:
    result = records.collect_result(collected.lines)
    assert len(result.test_ids) == len(ASSIGNED) + 3
    assert {(r.test_id, r.outcome) for r in result.decided} == {
        ("tests/test_broken.py", Outcome.ERROR), ("tests/test_skipmod.py", Outcome.SKIPPED)}


# --- run mode -----------------------------------------------------------------------------------


def test_run_mode_runs_exactly_the_assigned_tests_once(ran: Run) -> None:
    ids = [obj["id"] for obj in ran.of("test")]
    assert sorted(ids) == sorted([*ASSIGNED, UNICODE_FILE]), "each assigned test once, duplicates too"
    assert [obj["id"] for obj in ran.of("start")] == ids, "every test is announced before it ends"
    assert "must not run" not in json.dumps(ran.lines) + ran.output
    assert ran.code == 1


def test_run_mode_reports_an_unknown_id_as_missing(ran: Run) -> None:
    (missing,) = ran.of("missing")
    # What the runner collected in its module instead: the first 10 of the file's 12 items.
    assert (missing["id"], missing["more"]) == (UNKNOWN, 2)
    collected = missing["collected"]
    assert len(collected) == 10 and all(t.startswith(f"{MAIN}::") for t in collected)
    assert records.missing_record(UNKNOWN, "why").outcome is Outcome.ERROR


def test_run_mode_only_collects_the_assigned_files(ran: Run) -> None:
    assert ran.of("collect") == [], "test_broken.py and test_skipmod.py are not even imported"


EXPECTED = {
    f"{MAIN}::test_pass": (Outcome.PASSED, "call"),
    f"{MAIN}::test_fail": (Outcome.FAILED, "call"),
    f"{MAIN}::test_skip_mark": (Outcome.SKIPPED, "setup"),
    f"{MAIN}::test_xfail": (Outcome.XFAILED, "call"),
    f"{MAIN}::test_xpass": (Outcome.XPASSED, "call"),
    f"{MAIN}::test_setup_error": (Outcome.ERROR, "setup"),
    f"{MAIN}::test_teardown_error": (Outcome.ERROR, "teardown"),
    f"{MAIN}::test_subtests": (Outcome.FAILED, "call"),
    f"{MAIN}::test_param[a b]": (Outcome.PASSED, "call"),
    f"{MAIN}::test_param[\\xfc[x]]": (Outcome.PASSED, "call"),  # pytest escapes non-ASCII in parameter ids
    UNICODE_FILE: (Outcome.PASSED, "call"),
}


@pytest.mark.parametrize("test_id", list(EXPECTED), ids=lambda t: t.split("::")[-1])
def test_run_mode_lines_fold_to_the_outcome_pytest_reports(ran: Run, test_id: str) -> None:
    record = records.test_record(ran.tests()[test_id])
    assert record.test_id == test_id
    assert (record.outcome, record.phase) == EXPECTED[test_id]
    assert record.duration_s >= 0 and record.started_at > 0


def test_run_mode_xfail_run_false_folds_to_xfailed(ran: Run) -> None:
    obj = ran.tests()[f"{MAIN}::test_xfail_norun"]
    assert obj["phases"]["setup"]["cat"] == "xfailed"  # the plugin reports what pytest said
    assert records.test_record(obj).outcome is Outcome.XFAILED


def test_run_mode_messages_are_what_the_short_summary_shows(ran: Run) -> None:
    tests = ran.tests()
    assert tests[f"{MAIN}::test_fail"]["phases"]["call"]["msg"] == "assert 1 == 2"
    assert tests[f"{MAIN}::test_skip_mark"]["phases"]["setup"]["msg"] == "not on this host"
    assert tests[f"{MAIN}::test_xfail"]["phases"]["call"]["msg"] == "known bug 12"
    assert tests[f"{MAIN}::test_setup_error"]["phases"]["setup"]["msg"] == "RuntimeError: fixture boom"
    assert tests[f"{MAIN}::test_teardown_error"]["phases"]["teardown"]["msg"] == "OSError: teardown boom"


def test_run_mode_keeps_output_of_failing_tests_only_and_caps_it(ran: Run) -> None:
    tests = ran.tests()
    assert tests[f"{MAIN}::test_pass"]["sections"] == []
    assert tests[f"{MAIN}::test_param[a b]"]["sections"] == []
    sections = dict(tests[f"{MAIN}::test_fail"]["sections"])
    out = sections["Captured stdout call"]
    assert out.startswith("head-") and out.endswith("-tail\n")
    assert "characters cut by farm" in out
    kept = out.replace(out[out.index("\n[..."):out.index("...]\n") + 5], "")
    assert len(kept) == OUTPUT_CAP


def test_run_mode_records_subtest_failures_as_a_failed_call(ran: Run) -> None:
    obj = ran.tests()[f"{MAIN}::test_subtests"]
    call = obj["phases"]["call"]
    assert call["cat"] == "failed"
    assert "sub one failed" in call["longrepr"]
    assert "sub one failed" in records.test_record(obj).longrepr


def test_run_mode_reports_an_id_in_a_missing_file_and_still_runs_the_rest(tmp_path: Path) -> None:
    gone = "tests/test_gone.py::test_x"
    # An id whose file is not there: the runner collects what the user's arguments name (nothing
    # is narrowed away), so this project's broken module is collected too; a suite with it could
    # be planned only under --continue-on-collection-errors.
    run = run_pytest(make_project(tmp_path), "run", [f"{MAIN}::test_pass", gone], "-q",
                     "--continue-on-collection-errors")
    assert run.of("missing") == [{"k": "missing", "id": gone, "collected": [], "more": 0}]
    assert list(run.tests()) == [f"{MAIN}::test_pass"]


def test_run_mode_sends_plain_passes_compact_and_everything_else_in_full(ran: Run) -> None:
    tests = ran.tests()
    compact = {t for t, obj in tests.items() if obj.get("compact")}
    assert compact == {f"{MAIN}::test_pass", UNICODE_FILE} | {t for t in tests if t.startswith(f"{MAIN}::test_param[")}
    assert f"{MAIN}::test_teardown_error" not in compact and f"{MAIN}::test_xpass" not in compact


def test_run_mode_end_lines_come_before_the_next_start_and_the_last_is_written(ran: Run) -> None:
    kinds = [(obj["k"], obj["id"]) for obj in ran.lines if obj["k"] in ("start", "test")]
    assert kinds == [(k, t) for t in ran.tests() for k in ("start", "test")]


def test_run_mode_rearms_its_one_watchdog_so_no_test_is_stopped_early(tmp_path: Path) -> None:
    root = tmp_path
    for rel, text in {"pytest.ini": "[pytest]\n", "tests/test_slow.py": (
            "import time\nimport pytest\n\n@pytest.mark.parametrize('i', range(6))\ndef test_half(i):\n"
            "    time.sleep(0.5)\n\ndef test_hangs():\n    time.sleep(120)\n")}.items():
        (root / "project" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "project" / rel).write_text(text, encoding="utf-8")
    install_plugin(root / "plugin")
    ids = [f"tests/test_slow.py::test_half[{i}]" for i in range(6)] + ["tests/test_slow.py::test_hangs"]
    stacks = root / "stacks.txt"
    run = run_pytest(root, "run", ids, "-q", extra_env={"FARM_TEST_TIMEOUT": "2.0", "FARM_STACK_FILE": str(stacks)})
    assert list(run.tests()) == ids[:6], "six tests of 0.5 s each (3 s in all) pass under a 2 s timeout"
    assert [obj["id"] for obj in run.of("start")] == ids
    assert run.code != 0 and "test_hangs" in stacks.read_text(), "the hanging test is stopped, with its stack"



def test_run_mode_still_stops_a_hanging_test_after_a_failure_cancelled_the_watchdog(tmp_path: Path) -> None:
    """pytest's faulthandler plugin cancels the watchdog on every failing phase
    (pytest_exception_interact): a hang right after a setup error or a failure is still stopped."""
    root = tmp_path
    for rel, text in {"pytest.ini": "[pytest]\n", "tests/test_after.py": (
            "import time\nimport pytest\n\n@pytest.fixture\ndef broken():\n    raise RuntimeError('setup')\n\n"
            "def test_setup_error(broken):\n    pass\n\ndef test_fails():\n    assert False\n\n"
            "def test_hangs():\n    time.sleep(120)\n")}.items():
        (root / "project" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "project" / rel).write_text(text, encoding="utf-8")
    install_plugin(root / "plugin")
    ids = [f"tests/test_after.py::{name}" for name in ("test_setup_error", "test_fails", "test_hangs")]
    stacks = root / "stacks.txt"
    run = run_pytest(root, "run", ids, "-q", extra_env={"FARM_TEST_TIMEOUT": "2.0", "FARM_STACK_FILE": str(stacks)})
    assert list(run.tests()) == ids[:2] and [obj["id"] for obj in run.of("start")] == ids
    assert run.code != 0 and "test_hangs" in stacks.read_text(), "the hanging test is stopped, with its stack"

# --- the cap, directly --------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [2, 3, 10, 101])
def test_cap_keeps_head_and_tail_within_the_limit(limit: int) -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    capped = cap(text, limit)
    head, marker, tail = capped.partition("\n[... ")
    tail = tail.split(" ...]\n", 1)[1]
    assert len(head) + len(tail) <= limit
    assert text.startswith(head) and text.endswith(tail)
    assert f"{len(text) - len(head) - len(tail)} characters cut by farm" in capped
    assert cap(text, len(text)) == text


@pytest.mark.parametrize("limit", [0, 1])
def test_cap_below_two_characters_keeps_at_most_the_limit(limit: int) -> None:
    assert len(cap("x" * 1000, limit)) < 100


# --- the session's options, and -x/--maxfail left to the farm ------------------------------------


def test_collect_mode_reports_the_effective_options_after_the_ini_addopts(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    (root / "project" / "pytest.ini").write_text("[pytest]\naddopts = -ra --maxfail=2 --tb=short\n")
    run = run_pytest(root, "collect", None, "--collect-only", "-q", "-v", "-v", "--durations=4",
                     "-k", "not test_fail", "--ignore=tests/test_broken.py")
    (line,) = run.of("session")
    info = records.session_info(line)
    assert (info.maxfail, info.reportchars, info.tbstyle, info.durations) == (2, "a", "short", 4)
    assert info.verbose == 1  # -q -v -v
    assert info.deselected == 1  # test_fail, by -k
    assert info.configfile == "pytest.ini"
    assert info.python == ".".join(map(str, sys.version_info[:3])) and info.pytest == pytest.__version__
    assert records.collect_result(run.lines).session == info


def test_collect_mode_with_x_still_collects_past_a_collection_error(tmp_path: Path) -> None:
    run = run_pytest(make_project(tmp_path), "collect", None, "--collect-only", "-q", "-x")
    assert records.session_info(run.of("session")[0]).maxfail == 1
    assert UNICODE_FILE in [obj["id"] for obj in run.of("item")]  # collected after test_broken.py failed


def test_run_mode_ignores_x_and_maxfail_the_farm_applies_them_to_the_suite(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    (root / "project" / "pytest.ini").write_text("[pytest]\naddopts = --maxfail=1\n")
    run = run_pytest(root, "run", ASSIGNED, "-q", "-x")
    assert set(run.tests()) == set(ASSIGNED)  # pytest alone would stop at test_fail


def test_run_mode_reports_each_phase_duration(ran: Run) -> None:
    record = records.test_record(ran.tests()[f"{MAIN}::test_pass"])
    assert record.setup_s > 0 and record.call_s > 0 and record.teardown_s > 0
    assert abs(record.setup_s + record.call_s + record.teardown_s - record.duration_s) < 1e-6


def test_run_mode_under_tb_line_ends_a_failure_with_its_crash_line(tmp_path: Path) -> None:
    run = run_pytest(make_project(tmp_path), "run", [f"{MAIN}::test_fail"], "-q", "--tb=line")
    record = records.test_record(run.tests()[f"{MAIN}::test_fail"])
    assert record.longrepr.splitlines()[-1] == "tests/test_main.py:17: assert 1 == 2"


def test_the_shipped_plugin_needs_nothing_but_its_own_modules_the_standard_library_and_pytest(tmp_path: Path) -> None:
    install_plugin(tmp_path)
    shipped = {p.stem for p in (tmp_path / "farm_runner_plugin").glob("*.py")}
    allowed = set(sys.stdlib_module_names) | {"pytest", "pluggy"}
    for name in sorted(shipped):
        tree = ast.parse((tmp_path / "farm_runner_plugin" / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert {a.name.split(".")[0] for a in node.names} <= allowed, f"{name}: {ast.unparse(node)}"
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                assert str(node.module).split(".")[0] in allowed, f"{name}: {ast.unparse(node)}"
            elif isinstance(node, ast.ImportFrom):  # relative: a module of the plugin, shipped with it
                assert node.level == 1 and node.module in shipped, f"{name}: {ast.unparse(node)} is not shipped"


def test_a_run_exits_with_what_is_left_frozen_and_the_projects_atexit_handlers_run(tmp_path: Path) -> None:
    # The worker completes an attempt once its runner has exited: the interpreter's last garbage
    # collection over pytest and the project is skipped (run_mode's pytest_unconfigure freezes).
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(
        "import atexit, gc\n"
        "atexit.register(lambda: print('at exit:', 'frozen' if gc.get_freeze_count() else 'not frozen'))\n")
    (project / "test_x.py").write_text("def test_x():\n    pass\n")
    install_plugin(tmp_path / "plugin")
    got = run_pytest(tmp_path, "run", ["test_x.py::test_x"], "-q")
    assert got.code == 0
    assert list(got.tests()) == ["test_x.py::test_x"]
    assert "at exit: frozen" in got.output
