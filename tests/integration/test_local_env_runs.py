"""A local worker runs an assignment in its suite's environment: the environment's interpreter, as a
fresh `python -m pytest` (the pool process's standby is the worker's interpreter started ahead, and
stays for the next run without an environment), with the project's `src` on the path."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from test_local_trees import Sink

from farm.bundle import make_bundle
from farm.config import Settings
from farm.model import Assignment
from farm.suite_env import SuiteEnv
from workers import runner
from workers.backends.local import LocalBackend
from workers.suite_envs import EnvCache

TEST = textwrap.dedent("""
    import json, os, sys
    import probe_pkg

    def test_where():
        with open(os.environ["PROBE_FILE"], "w") as fh:
            json.dump({"argv": sys.orig_argv, "prefix": sys.prefix, "pkg": probe_pkg.__file__}, fh)
""")


def test_an_env_run_uses_the_environments_python_and_leaves_the_standby(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "src-project"
    (project / "tests").mkdir(parents=True)
    (project / "src" / "probe_pkg").mkdir(parents=True)
    (project / "src" / "probe_pkg" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text('[project]\nname = "probe-pkg"\nversion = "0"\ndependencies = []\n')
    (project / "tests" / "test_where.py").write_text(TEST)
    made = make_bundle(project, 64 * 1024 * 1024)
    bundle = tmp_path / f"{made.digest}.tar.gz"
    bundle.write_bytes(made.data)
    probe = tmp_path / "probe.json"
    monkeypatch.setenv("PROBE_FILE", str(probe))

    backend = LocalBackend(scratch=tmp_path / "runs", envs=EnvCache(tmp_path / "envs", installer="pip"))
    backend.process_started()
    try:
        standby = backend.standby
        assert standby is not None
        prepared = backend.prepare_env(SuiteEnv(install=(".",)), bundle, made.digest)
        assert prepared.paths == ("src",)
        sink = Sink()
        a = Assignment("s", "s-a000", 1, made.digest, ("-p", "no:hypothesispytest", "-q"),
                       ("tests/test_where.py::test_where",), env=SuiteEnv(install=(".",)))
        runner.run_assignment(a, backend=backend, bundle=lambda digest: bundle, sink=sink,  # type: ignore[arg-type]
                              worker="w@h", settings=Settings(), is_canceled=lambda: False, environment=prepared)
        assert sink.outcomes() == {"tests/test_where.py::test_where": "passed"}
        seen = json.loads(probe.read_text())
        assert seen["argv"][:3] == [prepared.python, "-m", "pytest"]  # a fresh runner, under the env's python
        assert Path(seen["prefix"]) == Path(prepared.python).parent.parent
        assert seen["pkg"].endswith("/project/src/probe_pkg/__init__.py")  # the run's own tree, editable
        assert backend.standby is standby and standby.proc.poll() is None  # kept for the next run without one
    finally:
        backend.shutdown()
