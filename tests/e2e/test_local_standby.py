"""A local worker's assignments run in pre-started runners (workers/pytest_standby.py) that behave
as a fresh `python -m pytest` would, and in a fresh one when a standby cannot: it died, or the
project shadows a module the standby has loaded. FARM_LOCAL_STANDBY=0 turns them off."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
from support.helpers import LEAN, farm

#: Written at import: by the collecting runner, then by the one that runs the test.
PROBE = textwrap.dedent("""
    import json, os, sys, time

    def _probe():
        out = {"orig_argv": sys.orig_argv, "argv": sys.argv, "path": sys.path, "cwd": os.getcwd(),
               "env": dict(os.environ), "nice": os.nice(0), "own_session": os.getsid(0) == os.getpid(),
               "own_group": os.getpgid(0) == os.getpid(), "flags": repr(sys.flags),
               "main": getattr(sys.modules["__main__"].__spec__, "name", None),
               "stdin": os.readlink("/proc/self/fd/0"), "pid": os.getpid(),
               "dont_write_bytecode": sys.dont_write_bytecode, "at": time.time(),
               # what Python decided at its start (a standby starts on pipes) and __main__'s own names
               "seekable": [sys.__stdin__.seekable(), sys.__stdout__.seekable(), sys.__stderr__.seekable()],
               "line_buffering": [sys.__stdout__.line_buffering, sys.__stderr__.line_buffering],
               "main_names": sorted(k for k in vars(sys.modules["__main__"]) if not k.startswith("__")),
               "fds": len(os.listdir("/proc/self/fd"))}
        with open(os.path.join(os.environ["PROBE_DIR"], f"{os.environ['FARM_MODE']}-{os.getpid()}.json"), "w") as fh:
            json.dump(out, fh)

    _probe()

    def test_probe():
        pass
""")

#: A project module of the name of one the standby has imported (pytest imports calendar through
#: email and http): a fresh runner, whose sys.path starts with the project, imports this one.
SHADOW = textwrap.dedent("""
    import importlib.util, os, sysconfig
    _spec = importlib.util.spec_from_file_location(
        "_stdlib_calendar", os.path.join(sysconfig.get_paths()["stdlib"], "calendar.py"))
    _real = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_real)
    globals().update({k: v for k, v in vars(_real).items() if not k.startswith("__")})
    FROM_THE_PROJECT = True
""")


def _project(root: Path, *, shadow: bool = False) -> Path:
    project = root / "proj"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_probe.py").write_text(PROBE)
    if shadow:
        (project / "calendar.py").write_text(SHADOW)
        (project / "tests" / "test_shadow.py").write_text(
            "import calendar\n\ndef test_the_project_module_is_imported():\n"
            "    assert getattr(calendar, 'FROM_THE_PROJECT', False)\n")
    return project


def _submit(project: Path, probe_dir: Path, *extra: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One suite of the probe test; what the probe saw in each runner, in the order they ran
    (the collecting one first, unless the collection cache planned it; then the one that ran it).
    A running farm's workers have their PROBE_DIR already: each suite's probes are removed after."""
    probe_dir.mkdir(exist_ok=True)
    result = farm("submit-suite", str(project), *extra, "--", *LEAN, "-q", "tests",
                  env={"PROBE_DIR": str(probe_dir), **(env or {})})
    assert result.returncode == 0, result.stdout + result.stderr
    probes = sorted((json.loads(p.read_text()) for p in probe_dir.glob("*.json")), key=lambda p: p["at"])
    for path in probe_dir.glob("*.json"):
        path.unlink()
    assert [p["env"]["FARM_MODE"] for p in probes][-1] == "run", probes
    return probes


def _pre_started(probe: dict[str, Any]) -> bool:
    return probe["orig_argv"][1].endswith("pytest_standby.py")


def _as_seen_anywhere(probe: dict[str, Any]) -> dict[str, Any]:
    """The probe without what differs per run (its directory, pid, the tests file) or by design
    (orig_argv: the interpreter's own command line, which says how the process was started)."""
    run_dir = str(Path(probe["cwd"]).parent)
    text = json.dumps({k: v for k, v in probe.items() if k not in ("orig_argv", "pid", "at")}).replace(run_dir, "RUN")
    seen: dict[str, Any] = json.loads(text)
    seen["env"].pop("FARM_RECORD_FD")  # a number either way (the pipe's fd in the runner)
    seen["env"].pop("PROBE_DIR")  # each suite its own
    seen["env"].pop("TMPDIR")  # each embedded farm its own
    return seen


def test_an_assignment_runs_in_a_pre_started_runner_that_behaves_as_a_fresh_one(tmp_path: Path) -> None:
    project = _project(tmp_path)
    pre = _submit(project, tmp_path / "pre", "--local-workers", "1")
    fresh = _submit(project, tmp_path / "fresh", "--local-workers", "1", env={"FARM_LOCAL_STANDBY": "0"})
    assert len(pre) == len(fresh) == 2  # an embedded farm collects on its worker, then runs
    assert all(_pre_started(p) for p in pre), [p["orig_argv"] for p in pre]  # a standby, then its replacement
    assert all(p["orig_argv"][1:3] == ["-m", "pytest"] for p in fresh), [p["orig_argv"] for p in fresh]
    for p, f in zip(pre, fresh, strict=True):
        assert p["argv"][0].endswith("pytest/__main__.py") and p["main"] == "pytest.__main__"
        # Same cwd, sys.path (the project first, then the plugin's PYTHONPATH), environment, argv,
        # flags, stdin, session and process group as a fresh `python -m pytest` in the run directory.
        seen, expected = _as_seen_anywhere(p), _as_seen_anywhere(f)
        differ = {k: (seen["env"].get(k), expected["env"].get(k)) for k in {*seen["env"], *expected["env"]}
                  if seen["env"].get(k) != expected["env"].get(k)}
        assert differ == {}
        assert seen == expected
        assert p["own_session"] and p["own_group"] and p["cwd"] in p["path"]


def test_a_project_shadowing_a_module_the_standby_loaded_gets_a_fresh_runner(tmp_path: Path) -> None:
    project = _project(tmp_path, shadow=True)
    probes = _submit(project, tmp_path / "probes", "--local-workers", "1")  # test_shadow passed (exit 0)
    assert not any(_pre_started(p) for p in probes), [p["orig_argv"] for p in probes]


def _standbys(root: psutil.Process) -> list[psutil.Process]:
    found = []
    for proc in root.children(recursive=True):
        try:
            if any(arg.endswith("pytest_standby.py") for arg in proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def _wait_for_standbys(root: psutil.Process, count: int, timeout: float = 60) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _standbys(root)
        if len(found) == count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"expected {count} standby runners below farm up, found {_standbys(root)}")


def test_a_dead_standby_means_a_fresh_runner_and_a_new_standby_serves_the_next(farm_up, tmp_path: Path) -> None:
    probe_dir = tmp_path / "probes"
    running = farm_up("--workers", "1", "--slots", "1", env={"PROBE_DIR": str(probe_dir)})
    root = psutil.Process(running.proc.pid)
    (first,) = _wait_for_standbys(root, 1)  # started with the worker's pool process
    first.kill()  # a zombie until its pool process looks at it
    project = _project(tmp_path)
    collect, run = _submit(project, probe_dir, "--broker", running.broker)
    assert not _pre_started(collect), collect["orig_argv"]  # the dead one was not fatal: a fresh runner
    assert _pre_started(run), run["orig_argv"]  # the standby started as the collection began
    (standby,) = _wait_for_standbys(root, 1)  # and the next, started as the run began
    assert standby.pid != run["pid"]
    first_next = _submit(project, probe_dir, "--broker", running.broker)[0]
    assert _pre_started(first_next) and first_next["pid"] == standby.pid  # it became the next runner
