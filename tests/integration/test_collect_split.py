"""A suite collected by two runners at once (workers/collect_shards.py) is the suite one runner collects."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from support.helpers import need

from farm.bundle import make_bundle
from farm.config import Settings
from farm.model import Collection, SuiteSpec
from workers import runner
from workers.backends.local import LocalBackend

MODULE = '''
import os
import pytest

with open(os.path.join(os.environ["SPLIT_MARKS"], __name__ + "-" + str(os.getpid())), "w"):
    pass

@pytest.mark.parametrize("i", [3, 1, 2])
def test_p(i):
    pass

class TestK:
    def test_m(self):
        pass
'''

FILES = {
    "pytest.ini": "[pytest]\n",
    "conftest.py": "import pytest\n\n@pytest.fixture\ndef thing():\n    return 1\n",
    "pkg/__init__.py": "",
    "pkg/test_a.py": MODULE,
    "pkg/sub/__init__.py": "",
    "pkg/sub/test_b.py": MODULE,
    "plain/test_c.py": MODULE,
    "plain/test_d.py": MODULE,
    "test_e.py": MODULE,
    "test_skipped.py": "import pytest\npytest.skip('not here', allow_module_level=True)\n",
}


def _has_pytest() -> bool:
    try:
        import pytest  # noqa: F401
    except ImportError:
        return False
    return True


def _bundle(tmp_path: Path, extra: dict[str, str]) -> Path:
    need(_has_pytest(), "pytest is not importable by this interpreter")
    project = tmp_path / "src"
    for rel, text in {**FILES, **extra}.items():
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    made = make_bundle(project, 64 * 1024 * 1024)
    path = tmp_path / f"{made.digest}.tar.gz"
    path.write_bytes(made.data)
    return path


def _collect(tmp_path: Path, bundle: Path, collectors: int, marks: Path) -> tuple[Collection, dict[str, set[str]]]:
    for old in marks.iterdir():
        old.unlink()
    backend = LocalBackend(python=sys.executable, scratch=tmp_path / "scratch", standby=False)
    spec = SuiteSpec("s", "project", "0" * 64, "default", "load", ("-p", "no:hypothesispytest", "-q"), 0.0)
    collection = runner.collect_suite(spec, backend=backend, bundle=lambda digest: bundle, worker="w@h",
                                      settings=Settings(), collectors=collectors)
    assert collection is not None
    imported: dict[str, set[str]] = {}
    for mark in marks.iterdir():
        module, _, pid = mark.name.rpartition("-")
        imported.setdefault(module, set()).add(pid)
    return collection, imported


def _pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: dict[str, str] | None = None,
          ) -> tuple[Collection, Collection, dict[str, set[str]]]:
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("SPLIT_MARKS", str(marks))
    bundle = _bundle(tmp_path, extra or {})
    one, _ = _collect(tmp_path, bundle, 1, marks)
    two, imported = _collect(tmp_path, bundle, 2, marks)
    return one, two, imported


def _same(one: Collection, two: Collection) -> None:
    assert two.test_ids == one.test_ids
    assert two.decided == one.decided
    assert two.exit_code == one.exit_code
    assert two.session == one.session


def test_two_collectors_import_each_module_once_between_them_and_give_one_collection_s_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one, two, imported = _pair(tmp_path, monkeypatch)
    _same(one, two)
    assert len(one.test_ids) == 20 and one.exit_code == 0
    assert [d.test_id for d in two.decided] == ["test_skipped.py"]
    assert set(imported) == {"pkg.test_a", "pkg.sub.test_b", "test_c", "test_d", "test_e"}
    assert all(len(pids) == 1 for pids in imported.values()), imported  # each module imported once
    assert len(set().union(*imported.values())) == 2  # by two processes


def test_a_hook_that_sees_every_item_keeps_the_collection_in_one_runner(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reverse = {"conftest.py": "def pytest_collection_modifyitems(items):\n    items.reverse()\n"}
    one, two, imported = _pair(tmp_path, monkeypatch, reverse)
    _same(one, two)
    assert one.test_ids[0] == "test_e.py::TestK::test_m"  # reversed across files
    assert len(set().union(*imported.values())) == 1


def test_a_collection_error_is_reported_as_one_runner_reports_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one, two, _ = _pair(tmp_path, monkeypatch, {"plain/test_broken.py": "1 / 0\n"})
    _same(one, two)
    assert one.exit_code == 2
    assert [d.test_id for d in one.decided if d.outcome.value == "error"] == ["plain/test_broken.py"]


def test_one_module_name_from_two_files_is_the_import_error_one_runner_reports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No __init__.py: both files are `test_c` (rootdir/prepend import); split, each shard would
    # import its own alone and report no error.
    one, two, _ = _pair(tmp_path, monkeypatch, {"other/test_c.py": MODULE})
    assert two.test_ids == one.test_ids
    assert two.exit_code == one.exit_code == 2
    # (the reports name the runners' own work directories)
    assert [(d.test_id, d.message) for d in two.decided] == [(d.test_id, d.message) for d in one.decided]
    assert [d.test_id for d in two.decided if d.outcome.value == "error"] == ["plain/test_c.py"]


def test_a_plugin_a_test_module_registers_parametrizes_the_files_after_it_as_in_one_runner(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {
        "helper_plugin.py": """
            def pytest_generate_tests(metafunc):
                if "n" in metafunc.fixturenames:
                    metafunc.parametrize("n", [1, 2])
            """,
        "plain/test_c.py": 'pytest_plugins = ["helper_plugin"]\n\ndef test_one():\n    pass\n',
        "plain/test_d.py": "import pytest\n\n@pytest.fixture\ndef n():\n    return 0\n\ndef test_two(n):\n    pass\n",
    }
    one, two, _ = _pair(tmp_path, monkeypatch, extra)
    _same(one, two)
    assert "plain/test_d.py::test_two[1]" in one.test_ids


def test_a_session_scoped_parameter_keeps_one_runner_s_order_across_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {
        "conftest.py": "import pytest\n\n@pytest.fixture(scope='session', params=['x', 'y'])\n"
                       "def wide(request):\n    return request.param\n",
        "plain/test_c.py": "def test_c(wide):\n    pass\n",
        "plain/test_d.py": "def test_d(wide):\n    pass\n",
    }
    one, two, _ = _pair(tmp_path, monkeypatch, extra)
    _same(one, two)
    wide = [t for t in one.test_ids if t.startswith("plain/")]
    assert wide == ["plain/test_c.py::test_c[x]", "plain/test_d.py::test_d[x]",
                    "plain/test_c.py::test_c[y]", "plain/test_d.py::test_d[y]"]
