"""A runner collects only its tests' files (or, where that is not certain, what the user named) and
checks its collection against the plan's: the plugin in a real pytest, as the local backend runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from workers import records
from workers.backends.local import install_plugin

SOURCES = {
    "pytest.ini": "[pytest]\n",
    # A conftest in a parent dir of the tests: its fixture and its hook must still apply.
    "tests/conftest.py": '''
        import os
        import pytest

        @pytest.fixture
        def answer():
            return 42

        class VirtualItem(pytest.Item):
            def runtest(self):
                pass

        class Cases(pytest.File):
            def collect(self):
                # an id whose first part is no file: a plugin's own naming
                yield VirtualItem.from_parent(self, name="case", nodeid="virtual-cases::case")

        def pytest_collect_file(parent, file_path):
            if file_path.name == "cases.txt":
                return Cases.from_parent(parent, path=file_path)
        ''',
    "tests/cases.txt": "one case\n",
    "tests/sub/test_a.py": '''
        import os
        open(os.environ["IMPORTS_LOG"], "a").write("test_a\\n")

        def test_one(answer):
            assert answer == 42

        def test_two():
            pass
        ''',
    "tests/sub/test_b.py": '''
        import os
        open(os.environ["IMPORTS_LOG"], "a").write("test_b\\n")

        def test_three():
            pass
        ''',
    "tests/other/test_c.py": '''
        import os
        open(os.environ["IMPORTS_LOG"], "a").write("test_c\\n")

        def test_four():
            pass
        ''',
}
A = "tests/sub/test_a.py"


def _project(root: Path) -> Path:
    for rel, text in SOURCES.items():
        path = root / "project" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    install_plugin(root / "plugin")
    return root


def _run(root: Path, tests: object, *args: str) -> tuple[list[dict[str, object]], list[str], str]:
    """Run mode over `tests` (FARM_TESTS_FILE's content): the plugin's lines, the modules imported, the output."""
    log, tests_file, sink_path = root / "imports.log", root / "tests.json", root / "records.jsonl"
    log.write_text("")
    tests_file.write_text(json.dumps(tests), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_", "PYTEST_", "PYTHON"))}
    env.update({"PYTHONPATH": str(root / "plugin"), "PYTHONDONTWRITEBYTECODE": "1",
                "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "FARM_MODE": "run", "FARM_TESTS_FILE": str(tests_file),
                "IMPORTS_LOG": str(log)})
    with open(sink_path, "wb") as sink:
        env["FARM_RECORD_FD"] = str(sink.fileno())
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "farm_runner_plugin", "-p", "no:cacheprovider",
                               *args], cwd=root / "project", env=env, pass_fds=(sink.fileno(),),
                              capture_output=True, text=True, timeout=120)
    ids = tests if isinstance(tests, list) else tests["ids"]  # type: ignore[index]
    reader = records.LineReader([str(t) for t in ids])
    lines = [reader.read(x) for x in sink_path.read_bytes().splitlines()]
    assert None not in lines
    return lines, log.read_text().split(), proc.stdout + proc.stderr  # type: ignore[return-value]


def _outcomes(lines: list[dict[str, object]]) -> dict[str, str]:
    outcomes = {str(x["id"]): "passed" for x in lines if x["k"] == "pass"}  # a plain pass's compact line
    return outcomes | {str(x["id"]): records.test_record(x).outcome.value for x in lines if x["k"] == "test"}


def test_a_runner_imports_only_its_files_and_keeps_the_parent_conftest(tmp_path: Path) -> None:
    root = _project(tmp_path)
    lines, imported, output = _run(root, [f"{A}::test_one"], "tests")
    assert _outcomes(lines) == {f"{A}::test_one": "passed"}, output  # the parent conftest's fixture
    assert imported == ["test_a"]


def test_an_id_that_is_no_file_makes_the_runner_collect_what_the_user_named(tmp_path: Path) -> None:
    root = _project(tmp_path)
    lines, imported, output = _run(root, [f"{A}::test_one", "virtual-cases::case"], "tests")
    assert _outcomes(lines) == {f"{A}::test_one": "passed", "virtual-cases::case": "passed"}, output
    assert not [x for x in lines if x["k"] == "missing"]
    assert sorted(imported) == ["test_a", "test_b", "test_c"]


def test_options_stay_and_ids_do_not_change_when_the_user_named_a_file(tmp_path: Path) -> None:
    root = _project(tmp_path)
    lines, imported, _ = _run(root, [f"{A}::test_one", f"{A}::test_two"], "-k", "one", A)
    assert _outcomes(lines) == {f"{A}::test_one": "passed"}
    assert imported == ["test_a"]


def test_a_file_with_other_items_than_planned_is_reported_stale(tmp_path: Path) -> None:
    root = _project(tmp_path)
    tests = {"ids": [f"{A}::test_one"], "files": {A: 3}}
    lines, _, _ = _run(root, tests, "tests")
    assert [x for x in lines if x["k"] == "stale"] == [{"k": "stale", "id": A, "planned": 3, "collected": 2}]
    assert _outcomes(lines) == {f"{A}::test_one": "passed"}


def test_node_ids_the_user_named_stay_as_given_so_the_check_finds_the_plans_count(tmp_path: Path) -> None:
    root = _project(tmp_path)
    lines, imported, _ = _run(root, {"ids": [f"{A}::test_one"], "files": {A: 1}}, f"{A}::test_one")
    assert not [x for x in lines if x["k"] == "stale"]
    assert _outcomes(lines) == {f"{A}::test_one": "passed"} and imported == ["test_a"]


def test_the_check_counts_after_the_users_deselection(tmp_path: Path) -> None:
    root = _project(tmp_path)
    # -k keeps one item of the file, as the plan's collection under -k found
    lines, _, _ = _run(root, {"ids": [f"{A}::test_one"], "files": {A: 1}}, "-k", "one", "tests")
    assert not [x for x in lines if x["k"] == "stale"]
    lines, _, _ = _run(root, {"ids": [f"{A}::test_one"], "files": {A: 2}}, "-k", "one", "tests")
    assert [x["id"] for x in lines if x["k"] == "stale"] == [A]
