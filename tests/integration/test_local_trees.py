"""The local backend unpacks a bundle once per digest, byte-compiled (pytest's rewritten test modules
included), and gives each run its own copy."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from support.helpers import need

from farm.bundle import make_bundle
from farm.config import Settings
from farm.model import Assignment, Completion, RecordBatch
from workers import bundles, runner
from workers.backends.local import LocalBackend

TAG = sys.implementation.cache_tag


class Sink:
    def __init__(self) -> None:
        self.batches: list[RecordBatch] = []
        self.completions: list[Completion] = []

    def send_batch(self, batch: RecordBatch) -> None:
        self.batches.append(batch)

    def send_completion(self, completion: Completion) -> None:
        self.completions.append(completion)

    def outcomes(self) -> dict[str, str]:
        return {r.test_id: r.outcome.value for b in self.batches for r in b.records}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    need(_has_pytest(), "pytest is not importable by this interpreter")
    project = tmp_path / "src"
    (project / "tests").mkdir(parents=True)
    (project / "helper.py").write_text("VALUE = 1\n")
    (project / "tests" / "test_writes.py").write_text(textwrap.dedent("""
        import os, sys
        sys.path.insert(0, os.getcwd())
        import helper

        def test_nothing_left_by_an_earlier_run():
            assert not os.path.exists("leak.txt")
            assert helper.VALUE == 1

        def test_writes_into_its_project():
            with open("leak.txt", "w") as fh:
                fh.write("x")
            with open("helper.py", "w") as fh:
                fh.write("VALUE = 2\\n")
    """))
    made = make_bundle(project, 64 * 1024 * 1024)
    path = tmp_path / f"{made.digest}.tar.gz"
    path.write_bytes(made.data)
    return path


def _has_pytest() -> bool:
    try:
        import pytest  # noqa: F401
    except ImportError:
        return False
    return True


def _run(backend: LocalBackend, bundle: Path, n: int) -> Sink:
    sink = Sink()
    ids = ("tests/test_writes.py::test_nothing_left_by_an_earlier_run",
           "tests/test_writes.py::test_writes_into_its_project")
    a = Assignment("s", f"s-a00{n}", 1, "0" * 64, ("-p", "no:hypothesispytest", "-q"), ids)
    runner.run_assignment(a, backend=backend, bundle=lambda digest: bundle, sink=sink,  # type: ignore[arg-type]
                          worker="w@h", settings=Settings(), is_canceled=lambda: False)
    return sink


def test_two_runs_of_a_digest_unpack_it_once(tmp_path: Path, bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unpacked: list[Path] = []
    real = bundles.extract_bundle
    monkeypatch.setattr(bundles, "extract_bundle",
                        lambda data, dest, cap: (unpacked.append(dest), real(data, dest, cap)))
    backend = LocalBackend(scratch=tmp_path / "scratch")
    for n in range(2):
        assert set(_run(backend, bundle, n).outcomes().values()) == {"passed"}
    assert len(unpacked) == 1


def test_what_a_test_writes_into_its_project_stays_in_its_run(tmp_path: Path, bundle: Path) -> None:
    backend = LocalBackend(scratch=tmp_path / "scratch")
    first = _run(backend, bundle, 0)
    assert set(first.outcomes().values()) == {"passed"}
    # The second run finds no leak.txt and helper.py as bundled (its first test checks both).
    second = _run(backend, bundle, 1)
    assert set(second.outcomes().values()) == {"passed"}, second.outcomes()
    tree = next((tmp_path / "trees").glob("*/project"))
    assert not (tree / "leak.txt").exists()
    assert (tree / "helper.py").read_text() == "VALUE = 1\n"


def test_bytecode_is_compiled_into_the_shared_tree_and_each_run_gets_it(tmp_path: Path, bundle: Path) -> None:
    backend = LocalBackend(scratch=tmp_path / "scratch")
    from workers.backends.base import RunRequest

    run = backend.start(RunRequest("collect", bundle, ("-p", "no:hypothesispytest"), (), "s-collect"))
    try:
        tree = next((tmp_path / "trees").glob("*/project"))
        assert (tree / "__pycache__" / f"helper.{TAG}.pyc").is_file()
        # pytest rewrites test modules itself: the interpreter's bytecode of them would go unused
        # (what is there is pytest's own rewritten module: test_pytest_rewrites_...).
        assert not (tree / "tests" / "__pycache__" / f"test_writes.{TAG}.pyc").exists()
        assert (run.workdir / "project" / "__pycache__" / f"helper.{TAG}.pyc").is_file()
    finally:
        run.stop(grace=1.0)
        run.close()


def _rewritten(directory: Path, module: str) -> Path:
    from _pytest.assertion.rewrite import PYC_TAIL

    return directory / "__pycache__" / f"{module}{PYC_TAIL}"


def test_pytest_rewrites_are_kept_in_the_tree_and_valid_in_each_copy(tmp_path: Path, bundle: Path) -> None:
    from _pytest.assertion.rewrite import _read_pyc

    from workers.backends.base import RunRequest

    backend = LocalBackend(scratch=tmp_path / "scratch")
    run = backend.start(RunRequest("collect", bundle, ("-p", "no:hypothesispytest"), (), "s-collect"))
    try:
        tree = next((tmp_path / "trees").glob("*/project"))
        assert _rewritten(tree / "tests", "test_writes").is_file()
        source = run.workdir / "project" / "tests" / "test_writes.py"
        # What the run's pytest reads: valid for its copy's source, and named after the copy, not the tree.
        code = _read_pyc(source, _rewritten(source.parent, "test_writes"))
        assert code is not None
        assert code.co_filename == str(source)
        assert not _rewritten(tree, "helper").exists()  # not a test module: pytest does not rewrite it
    finally:
        run.stop(grace=1.0)
        run.close()


def test_a_run_that_turns_on_the_pass_hook_gets_no_kept_rewrites(tmp_path: Path, bundle: Path) -> None:
    from workers.backends.base import RunRequest

    backend = LocalBackend(scratch=tmp_path / "scratch")
    args = ("-p", "no:hypothesispytest", "-o", "enable_assertion_pass_hook=true")
    run = backend.start(RunRequest("collect", bundle, args, (), "s-collect"))
    try:
        tree = next((tmp_path / "trees").glob("*/project"))
        assert _rewritten(tree / "tests", "test_writes").is_file()
        assert not _rewritten(run.workdir / "project" / "tests", "test_writes").exists()
        assert (run.workdir / "project" / "__pycache__" / f"helper.{TAG}.pyc").is_file()
    finally:
        run.stop(grace=1.0)
        run.close()


def test_a_project_configured_with_the_pass_hook_gets_no_rewrites(tmp_path: Path) -> None:
    need(_has_pytest(), "pytest is not importable by this interpreter")
    for name, ini in (("plain", "[pytest]\n"), ("hooked", "[pytest]\nenable_assertion_pass_hook = true\n")):
        tree = tmp_path / name
        tree.mkdir()
        (tree / "pytest.ini").write_text(ini)
        (tree / "test_x.py").write_text("def test_x():\n    assert 1 + 1 == 2\n")
        bundles.compile_tree(sys.executable, tree)
    assert _rewritten(tmp_path / "plain", "test_x").is_file()
    assert not _rewritten(tmp_path / "hooked", "test_x").exists()


def test_the_pass_hook_in_a_pytest_toml_or_a_c_file_also_keeps_rewrites_out(tmp_path: Path) -> None:
    # pytest 9 reads pytest.toml and .pytest.toml, and `-c FILE` takes any name (round 5's review).
    need(_has_pytest(), "pytest is not importable by this interpreter")
    for name, text in (("pytest.toml", "[pytest]\nenable_assertion_pass_hook = true\n"),
                       (".pytest.toml", "[pytest]\nenable_assertion_pass_hook = true\n"),
                       ("ci-settings.ini", "[pytest]\nenable_assertion_pass_hook = true\n")):
        tree = tmp_path / f"tree{len(list(tmp_path.iterdir()))}"
        tree.mkdir()
        (tree / name).write_text(text)
        (tree / "test_x.py").write_text("def test_x():\n    assert 1 + 1 == 2\n")
        bundles.compile_tree(sys.executable, tree)
        assert not _rewritten(tree, "test_x").exists(), name


def test_a_module_pytest_warns_about_while_rewriting_is_left_to_the_run(tmp_path: Path) -> None:
    # "assertion is always true": the run must show it (or fail on it under -W error) as plain
    # pytest does, so no kept rewrite of that module; its neighbour without a warning gets one.
    need(_has_pytest(), "pytest is not importable by this interpreter")
    (tmp_path / "test_warned.py").write_text("def test_x():\n    assert (1 == 2, 'always true')\n")
    (tmp_path / "test_quiet.py").write_text("def test_x():\n    assert 1 + 1 == 2\n")
    bundles.compile_tree(sys.executable, tmp_path)
    assert _rewritten(tmp_path, "test_quiet").is_file()
    assert not _rewritten(tmp_path, "test_warned").exists()


def test_a_symlinked_pycache_gets_no_rewrites_written_through_it(tmp_path: Path) -> None:
    need(_has_pytest(), "pytest is not importable by this interpreter")
    tree, elsewhere = tmp_path / "tree", tmp_path / "elsewhere"
    tree.mkdir()
    elsewhere.mkdir()
    (tree / "__pycache__").symlink_to(elsewhere)
    (tree / "test_x.py").write_text("def test_x():\n    assert 1 + 1 == 2\n")
    from workers import pytest_rewrites

    assert pytest_rewrites.main(str(tree)) == 0
    assert not any(p.name.startswith("test_x") for p in elsewhere.iterdir())


def test_kept_trees_outlive_their_backend_and_a_second_one_unpacks_nothing(
        tmp_path: Path, bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The embedded farm: each command's worker is a new backend with a new scratch directory, and
    # the kept trees directory (in the user's cache) is the same.
    unpacked: list[Path] = []
    real = bundles.extract_bundle
    monkeypatch.setattr(bundles, "extract_bundle",
                        lambda data, dest, cap: (unpacked.append(dest), real(data, dest, cap)))
    kept = tmp_path / "kept"
    for n in range(2):
        backend = LocalBackend(scratch=tmp_path / f"cluster-{n}" / "runs", kept_trees=kept)
        assert set(_run(backend, bundle, n).outcomes().values()) == {"passed"}
    assert len(unpacked) == 1
    (tree,) = [p for p in kept.iterdir() if not p.name.startswith(".")]
    assert (tree / "project" / "__pycache__" / f"helper.{TAG}.pyc").is_file()
    assert not (tmp_path / "cluster-0" / "trees").exists()


def test_a_new_kept_tree_evicts_the_least_recently_used_beyond_the_bounds(tmp_path: Path, bundle: Path) -> None:
    import os

    kept = tmp_path / "kept"
    trees = bundles.ProjectTrees(kept, sys.executable, bounds=bundles.TreeBounds(trees=2))
    old = bundles.IN_USE_S + 10
    for name, age in (("a" * 64 + "-x", old + 2), ("b" * 64 + "-x", old + 1)):
        (kept / name / "project").mkdir(parents=True)
        os.utime(kept / name, (0, os.path.getmtime(kept) - age))
    (kept / ".incoming-left").mkdir()
    os.utime(kept / ".incoming-left", (0, os.path.getmtime(kept) - bundles.LEFTOVER_S - 10))
    made = trees.tree(bundle)
    assert made.is_dir()
    assert sorted(p.name for p in kept.iterdir()) == sorted(["b" * 64 + "-x", made.parent.name])
