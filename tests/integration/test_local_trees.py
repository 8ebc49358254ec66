"""The local backend unpacks a bundle once per digest, byte-compiled, and gives each run its own copy."""

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
        # pytest rewrites test modules itself: the interpreter's bytecode of them would go unused.
        assert not (tree / "tests" / "__pycache__").exists()
        assert (run.workdir / "project" / "__pycache__" / f"helper.{TAG}.pyc").is_file()
    finally:
        run.stop(grace=1.0)
        run.close()
