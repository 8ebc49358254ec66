"""A local backend's standby runner is not used when the worker's environment changed since it
started in what Python reads only at its start (PYTHONHASHSEED here): the run gets a fresh runner."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from test_local_trees import Sink

from farm.bundle import make_bundle
from farm.config import Settings
from farm.model import Assignment
from workers import runner
from workers.backends.local import LocalBackend

TEST = textwrap.dedent("""
    import json, os, sys

    def test_hash_seed():
        with open(os.environ["PROBE_FILE"], "w") as fh:
            json.dump({"orig_argv": sys.orig_argv, "hash_randomization": sys.flags.hash_randomization}, fh)
""")


def _run(backend: LocalBackend, bundle: Path, n: int) -> Sink:
    sink = Sink()
    a = Assignment("s", f"s-a00{n}", 1, "0" * 64, ("-p", "no:hypothesispytest", "-q"),
                   ("tests/test_seed.py::test_hash_seed",))
    runner.run_assignment(a, backend=backend, bundle=lambda digest: bundle, sink=sink,  # type: ignore[arg-type]
                          worker="w@h", settings=Settings(), is_canceled=lambda: False)
    return sink


def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The probe's project as a bundle file, and the file its test writes."""
    project = tmp_path / "src"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_seed.py").write_text(TEST)
    made = make_bundle(project, 64 * 1024 * 1024)
    bundle = tmp_path / f"{made.digest}.tar.gz"
    bundle.write_bytes(made.data)
    probe = tmp_path / "probe.json"
    monkeypatch.setenv("PROBE_FILE", str(probe))
    return bundle, probe


def test_a_start_up_variable_set_after_the_standby_started_gets_a_fresh_runner(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle, probe = _project(tmp_path, monkeypatch)
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    backend = LocalBackend(scratch=tmp_path / "runs")
    backend.process_started()  # as in a pool process: its standby starts, without PYTHONHASHSEED
    try:
        assert _run(backend, bundle, 1).outcomes() == {"tests/test_seed.py::test_hash_seed": "passed"}
        seen = json.loads(probe.read_text())
        assert seen["orig_argv"][1].endswith("pytest_standby.py") and seen["hash_randomization"] == 1
        monkeypatch.setenv("PYTHONHASHSEED", "0")  # the next standby started before this
        assert _run(backend, bundle, 2).outcomes() == {"tests/test_seed.py::test_hash_seed": "passed"}
        seen = json.loads(probe.read_text())
        assert seen["orig_argv"][1:3] == ["-m", "pytest"] and seen["hash_randomization"] == 0
        # A standby (started after the change) serves the next run again, with the variable applied.
        assert _run(backend, bundle, 3).outcomes() == {"tests/test_seed.py::test_hash_seed": "passed"}
        seen = json.loads(probe.read_text())
        assert seen["orig_argv"][1].endswith("pytest_standby.py") and seen["hash_randomization"] == 0
    finally:
        backend.shutdown()


def test_a_standby_whose_loaded_files_changed_on_disk_is_not_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An upgrade on disk (pip install -U pytest) while a standby waited: it would run the old
    pytest from memory beside new files, so the run gets a fresh runner."""
    from workers.backends.local import file_versions

    bundle, probe = _project(tmp_path, monkeypatch)
    backend = LocalBackend(scratch=tmp_path / "runs")
    backend.process_started()
    try:
        standby = backend.standby
        assert standby is not None and standby._ready(30)
        assert any(path.endswith("pytest/__init__.py") for path in standby.files), sorted(standby.files)[:5]
        # One of the files it loaded, as the worker saw it then, is another version now (a real
        # package's file is not ours to rewrite: a stand-in in its list).
        module = tmp_path / "upgraded.py"
        module.write_text("VERSION = 1\n")
        standby.files.update(file_versions([str(module)]))
        module.write_text("VERSION = 22\n")
        assert _run(backend, bundle, 1).outcomes() == {"tests/test_seed.py::test_hash_seed": "passed"}
        assert json.loads(probe.read_text())["orig_argv"][1:3] == ["-m", "pytest"]
        # Its replacement loaded what is on disk now: it serves the next run.
        assert _run(backend, bundle, 2).outcomes() == {"tests/test_seed.py::test_hash_seed": "passed"}
        assert json.loads(probe.read_text())["orig_argv"][1].endswith("pytest_standby.py")
    finally:
        backend.shutdown()


@pytest.mark.parametrize("queued", [True, False])
def test_the_next_standby_starts_beside_the_run_only_when_work_waits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, queued: bool) -> None:
    """With nothing queued (a small suite's last assignments), the next standby would import
    pytest beside the runners for no assignment: it starts once the run is over."""
    bundle, probe = _project(tmp_path, monkeypatch)
    backend = LocalBackend(scratch=tmp_path / "runs")
    backend.queued = lambda: queued
    backend.process_started()
    real = backend._replenish
    runs = tmp_path / "runs"
    run_over: list[bool] = []  # at each start of a standby: was the run over (its directory removed)?
    monkeypatch.setattr(backend, "_replenish", lambda: (run_over.append(not any(runs.iterdir())), real()))
    try:
        assert _run(backend, bundle, 1).outcomes() == {"tests/test_seed.py::test_hash_seed": "passed"}
        assert json.loads(probe.read_text())["orig_argv"][1].endswith("pytest_standby.py")
        assert run_over == [not queued]
        assert backend.standby is not None  # either way, one is ready for the next assignment
    finally:
        backend.shutdown()


def test_a_collection_starts_the_next_standby_beside_it_even_with_nothing_queued(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's assignments follow its collection and are not queued while it runs."""
    from workers.backends.base import RunRequest

    bundle, _ = _project(tmp_path, monkeypatch)
    backend = LocalBackend(scratch=tmp_path / "runs")
    backend.queued = lambda: False
    backend.process_started()
    real = backend._replenish
    runs = tmp_path / "runs"
    run_over: list[bool] = []
    monkeypatch.setattr(backend, "_replenish", lambda: (run_over.append(not any(runs.iterdir())), real()))
    try:
        run = backend.start(RunRequest("collect", bundle, ("-p", "no:hypothesispytest"), (), "s-collect"))
        while run.proc.poll() is None:
            run.read_lines(0.1)
        run.close()
        assert run_over == [False]
        assert backend.standby is not None
    finally:
        backend.shutdown()
