"""farm's runner plugin: reports collection and per-test results as JSON lines on a file descriptor.

It travels with each assignment into the sandbox, SSH host or VM, so it uses only the standard
library and pytest (7.2 or newer). The runner loads it with `-p farm_runner_plugin` and sets:

  FARM_RECORD_FD    the descriptor to write JSON lines to (one object per line)
  FARM_MODE         "collect" (report what --collect-only found) or "run"
  FARM_TESTS_FILE   in run mode: a JSON list of the node ids to run; everything else is deselected
  FARM_OUTPUT_CAP   bytes of captured output kept per section (default 65536)
  FARM_LONGREPR_CAP bytes of failure report kept per phase (default 262144)
  FARM_TEST_TIMEOUT seconds one test may take (0 or unset: no limit). Past it, faulthandler
                    writes every thread's stack to FARM_STACK_FILE and ends the process; the
                    worker records the test as `timeout` and starts a new runner for the rest.

Lines it writes: {"k": "item", "id"} per collected test (collect mode); {"k": "session", "id": "",
...} once at the end of a collection: the session's effective options (after the ini's addopts),
how many tests it deselected, its versions; {"k": "collect", "id", "cat", "msg", "longrepr"} per
failed or skipped collector; {"k": "start", "id", "t"} when a test starts; {"k": "test", "id",
"t", "duration_s", "phases": {phase: {"cat", "msg", "longrepr", "s"}}, "sections"} when it ends
("s": the phase's duration); {"k": "missing", "id", "collected", "more", "planned"} for an
assigned id that was not collected ("collected": the first ids the runner did collect for its
function, or its module; "more": how many more; "planned": how many items its function had in
the plan). Folding the phases into one outcome is the worker's job (farm.outcomes.fold_phases).

`-x`/`--maxfail` never stop a runner: the farm applies them to the whole suite (the coordinator
counts failures across assignments and stops them all), so this plugin turns them off here.

FARM_TESTS_FILE holds a JSON list of node ids, or {"ids": [...], "positions": [[index, count],
...]}: each id's position among the parametrized items of its function in the plan, and how many
there were ([-1, 0] for an id without parameters). A test whose parameter ids changed since the
plan (parameters made from the time, a random seed, an unordered set) is not collected under its
planned id; when the runner collected that function with as many parametrized items as the plan,
the item at the planned position runs in its place, reported under the planned id with
"ran_as": the id it ran as (start and test lines).
"""

from __future__ import annotations

import faulthandler
import json
import os
import platform
import signal
import sys
import time
from typing import Any

import pytest

PLUGIN_NAME = "farm-recorder"


def pytest_configure(config: Any) -> None:
    fd = os.environ.get("FARM_RECORD_FD")
    if not fd:
        return
    mode = os.environ.get("FARM_MODE", "run")
    emitter = _Emitter(int(fd))
    maxfail = int(getattr(config.option, "maxfail", 0) or 0)
    config.option.maxfail = 0  # suite-wide, the coordinator's job: see the module docstring
    if mode == "collect":
        config.pluginmanager.register(_CollectRecorder(config, emitter, maxfail), PLUGIN_NAME)
        return
    with open(os.environ["FARM_TESTS_FILE"], encoding="utf-8") as fh:
        wanted, positions = _read_tests_file(json.load(fh))
    recorder = _RunRecorder(config, emitter, wanted, positions)
    config.pluginmanager.register(recorder, PLUGIN_NAME)
    # Collect only the files the assignment needs: replace the positional arguments (the user's
    # paths) with the assigned tests' files, keeping every other option as the user gave it.
    files: list[str] = []
    for nodeid in wanted:
        path = nodeid.split("::", 1)[0]
        if path not in files:
            files.append(path)
    # A file this environment lacks would make pytest stop before anything runs; leave it out, and
    # its tests are reported "missing" like any other assigned test that was not collected.
    present = [str(config.rootpath / f) for f in files if (config.rootpath / f).exists()]
    config.args[:] = present or list(config.args)


class _Emitter:
    """Writes JSON lines to the record descriptor, whole lines at a time."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        # Children a test forks must not keep our pipe open after an exec.
        os.set_inheritable(fd, False)

    def emit(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8", "replace")
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]


def _cap(text: str, limit: int) -> str:
    """Keep the head and tail of text longer than limit characters, saying what was cut."""
    if len(text) <= limit:
        return text
    half = max(0, limit // 2)
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut} characters cut by farm ...]\n{text[len(text) - half:]}"


#: The longest crash message kept (pytest's short summary shows it whole on CI and under -vv).
MESSAGE_CAP = 4096


def _message(report: Any) -> str:
    """The message pytest's short summary would show for a report: the crash message, whole (as
    pytest shows it on CI and under -vv; elsewhere its first line), capped."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, lineno, reason)
        reason = str(longrepr[2])
        return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).strip()[:MESSAGE_CAP] if crash.message else ""
    text = str(longrepr or "")
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _longrepr(report: Any, cap: int) -> str:
    if report.passed:
        return ""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, lineno, reason)
        path, lineno, reason = longrepr
        try:
            path = os.path.relpath(str(path))
        except ValueError:
            pass
        return _cap(f"{path}:{lineno}: {reason}", cap)
    try:
        text = report.longreprtext
    except Exception:  # a plugin's odd longrepr must not lose the record
        text = str(report.longrepr)
    return _cap(text, cap)


def _session_line(config: Any, maxfail: int, deselected: int) -> dict[str, Any]:
    """The session's effective options and versions, as farm.model.SessionInfo holds them."""
    option = config.option
    durations = getattr(option, "durations", None)
    inipath = getattr(config, "inipath", None)
    configfile = ""
    if inipath is not None:
        try:
            configfile = os.path.relpath(str(inipath), str(config.rootpath))
        except ValueError:
            configfile = str(inipath)
    try:
        import pluggy
        pluggy_version = str(pluggy.__version__)
    except (ImportError, AttributeError):
        pluggy_version = ""
    return {
        "plugins": _plugins(config),
        "k": "session", "id": "", "maxfail": maxfail, "verbose": int(getattr(option, "verbose", 0) or 0),
        "reportchars": str(getattr(option, "reportchars", "fE") or ""),
        "tbstyle": str(getattr(option, "tbstyle", "auto") or "auto"),
        "durations": -1 if durations is None else int(durations),
        "durations_min": -1.0 if getattr(option, "durations_min", None) is None else float(option.durations_min),
        "deselected": deselected, "configfile": configfile, "platform": sys.platform,
        "python": platform.python_version(), "pytest": str(pytest.__version__), "pluggy": pluggy_version,
    }


def _plugins(config: Any) -> str:
    """The installed plugins as pytest's header names them (`xdist-3.8.0`)."""
    names: list[str] = []
    try:
        for _plugin, dist in config.pluginmanager.list_plugin_distinfo():
            project = getattr(dist, "project_name", None) or dist.metadata["name"]
            name = f"{project}-{dist.version}".removeprefix("pytest-")
            if name not in names:
                names.append(name)
    except Exception:  # an odd distribution must not cost the collection
        return ""
    return ", ".join(names)


class _CollectRecorder:
    """Collect mode: every collected item, every collector that failed or was skipped, and the session."""

    def __init__(self, config: Any, emitter: _Emitter, maxfail: int) -> None:
        self.config = config
        self.emitter = emitter
        self.maxfail = maxfail
        self.deselected = 0
        self.cap = int(os.environ.get("FARM_LONGREPR_CAP", "262144"))

    def pytest_deselected(self, items: Any) -> None:
        self.deselected += len(items)

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed or report.skipped:
            self.emitter.emit({
                "k": "collect",
                "id": report.nodeid,
                "cat": "error" if report.failed else "skipped",
                "msg": _message(report),
                "longrepr": _longrepr(report, self.cap),
            })

    def pytest_collection_finish(self, session: Any) -> None:
        seen: set[str] = set()
        for item in session.items:
            if item.nodeid not in seen:
                seen.add(item.nodeid)
                self.emitter.emit({"k": "item", "id": item.nodeid})
        self.emitter.emit(_session_line(self.config, self.maxfail, self.deselected))


def _read_tests_file(data: Any) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """The assigned ids, and the planned (index, count) of those with parameters."""
    if isinstance(data, list):
        return [str(t) for t in data], {}
    ids = [str(t) for t in data.get("ids", [])]
    positions = {}
    for test_id, pos in zip(ids, data.get("positions") or [], strict=False):
        if isinstance(pos, list) and len(pos) == 2 and pos[0] >= 0:
            positions[test_id] = (int(pos[0]), int(pos[1]))
    return ids, positions


def split_params(nodeid: str) -> tuple[str, str | None]:
    """(function id, parameter id) of a node id: `t.py::C::f[1-a]` -> (`t.py::C::f`, `1-a`).

    The path ends at the first `::` (a path may hold `[`); None when it has no parameters. The
    same rule as farm.nodeids.split_params (this module cannot import farm)."""
    path, sep, tail = nodeid.partition("::")
    names, bracket, params = tail.partition("[")
    if not sep or not bracket:
        return nodeid, None
    return f"{path}::{names}", params[:-1] if params.endswith("]") else params


#: Ids listed in a "missing" line's "collected".
_LISTED = 10


def match_renamed(missing: list[str], positions: dict[str, tuple[int, int]], collected: list[str],
                  wanted: set[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Match planned ids that were not collected to what was: ({collected id: planned id},
    {planned id without a sound match: the ids collected for its function, or its module}).

    A match is sound when the planned id has parameters, the runner collected its function with
    as many parametrized items as the plan had, the planned ids of that function that it did
    collect sit where the plan had them, and the item at the planned position is not itself a
    planned id of this run. Pure, for the tests."""
    by_function: dict[str, list[str]] = {}
    for test_id in collected:
        function, params = split_params(test_id)
        if params is not None:
            by_function.setdefault(function, []).append(test_id)
    moved = set()  # functions whose items moved: a planned id collected at another position
    for test_id in wanted.intersection(collected):
        function, params = split_params(test_id)
        if params is not None and test_id in positions:
            items = by_function[function]
            index, count = positions[test_id]
            if count != len(items) or items[index] != test_id:
                moved.add(function)
    ran_as: dict[str, str] = {}
    unmatched: dict[str, list[str]] = {}
    for test_id in missing:
        function, params = split_params(test_id)
        items = by_function.get(function, [])
        index, count = positions.get(test_id, (-1, 0))
        if params is not None and function not in moved and 0 <= index < count == len(items):
            candidate = items[index]
            if candidate not in wanted and candidate not in ran_as:
                ran_as[candidate] = test_id
                continue
        module = function.split("::", 1)[0]
        unmatched[test_id] = items or [t for t in collected if t.split("::", 1)[0] == module]
    return ran_as, unmatched


class _RunRecorder:
    """Run mode: keep only the assigned tests, and report each as it finishes."""

    def __init__(self, config: Any, emitter: _Emitter, wanted: list[str],
                 positions: dict[str, tuple[int, int]] | None = None) -> None:
        self.config = config
        self.emitter = emitter
        self.wanted = set(wanted)
        self.positions = positions or {}
        self.planned: dict[str, str] = {}  # id collected -> the planned id it runs as (renamed tests)
        self.output_cap = int(os.environ.get("FARM_OUTPUT_CAP", "65536"))
        self.longrepr_cap = int(os.environ.get("FARM_LONGREPR_CAP", "262144"))
        self.current: dict[str, dict[str, Any]] = {}
        self.timeout = float(os.environ.get("FARM_TEST_TIMEOUT") or 0)
        stack_path = os.environ.get("FARM_STACK_FILE")
        self.stack_file = open(stack_path, "w") if stack_path else None  # noqa: SIM115
        if self.stack_file is not None and hasattr(signal, "SIGUSR1"):
            # The worker asks for the stacks before it stops a run at its deadline.
            faulthandler.register(signal.SIGUSR1, file=self.stack_file, all_threads=True)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session: Any, config: Any, items: list[Any]) -> None:
        collected = list(dict.fromkeys(item.nodeid for item in items))
        missing = sorted(self.wanted - set(collected))
        unmatched: dict[str, list[str]] = {}
        self.planned = {}
        if missing:
            self.planned, unmatched = match_renamed(missing, self.positions, collected, self.wanted)
        keep, drop, seen = [], [], set()
        for item in items:
            if (item.nodeid in self.wanted or item.nodeid in self.planned) and item.nodeid not in seen:
                seen.add(item.nodeid)
                keep.append(item)
            else:
                drop.append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep
        for nodeid, same in unmatched.items():
            line = {"k": "missing", "id": nodeid, "collected": same[:_LISTED], "more": len(same[_LISTED:])}
            if nodeid in self.positions:
                line["planned"] = self.positions[nodeid][1]  # how many items its function had in the plan
            self.emitter.emit(line)

    def _planned_id(self, nodeid: str) -> dict[str, str]:
        """The id and, for a renamed test, the id it ran as, for a start or test line."""
        planned = self.planned.get(nodeid)
        return {"id": nodeid} if planned is None else {"id": planned, "ran_as": nodeid}

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.emitter.emit({
                "k": "collect",
                "id": report.nodeid,
                "cat": "error",
                "msg": _message(report),
                "longrepr": _longrepr(report, self.longrepr_cap),
            })

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        now = time.time()
        self.current[nodeid] = {"t": now, "duration_s": 0.0, "phases": {}, "sections": [], "sub": []}
        self.emitter.emit({"k": "start", **self._planned_id(nodeid), "t": now})
        if self.stack_file is not None and self.timeout > 0:  # armed after the start line: the worker knows which
            faulthandler.dump_traceback_later(self.timeout, exit=True, file=self.stack_file)

    def pytest_runtest_logreport(self, report: Any) -> None:
        state = self.current.get(report.nodeid)
        if state is None:
            return
        if getattr(report, "context", None) is not None:  # a subtest's report (pytest >= 9)
            if report.failed:
                state["sub"].append(_longrepr(report, self.longrepr_cap))
            return
        category = self.config.hook.pytest_report_teststatus(report=report, config=self.config)[0]
        state["duration_s"] += float(getattr(report, "duration", 0.0) or 0.0)
        phase: dict[str, Any] = {"cat": category or "", "s": float(getattr(report, "duration", 0.0) or 0.0)}
        if not report.passed or category in ("xpassed",):
            phase["msg"] = _message(report)
            phase["longrepr"] = _longrepr(report, self.longrepr_cap)
            if category == "failed" and self.config.option.tbstyle == "line":
                phase["longrepr"] = _cap(f"{phase['longrepr']}\n{self._crash_line(report)}".strip(),
                                         self.longrepr_cap)
        state["phases"][report.when] = phase
        # Each phase's report carries the sections captured so far; the last one has them all.
        state["sections"] = [[name, _cap(text, self.output_cap)] for name, text in report.sections]

    def _crash_line(self, report: Any) -> str:
        """`path:line: message` of the failure, as pytest's `--tb=line` prints it (path from the rootdir)."""
        crash = getattr(report.longrepr, "reprcrash", None)
        if crash is None:
            return str(report.longrepr)[:50]
        path = str(crash.path)
        try:
            relative = os.path.relpath(path, str(self.config.rootpath))
            path = path if relative.startswith("..") else relative
        except ValueError:
            pass
        return f"{path}:{crash.lineno}: {str(crash.message).split(chr(10), 1)[0]}"  # its first line, as pytest

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        if self.stack_file is not None and self.timeout > 0:
            faulthandler.cancel_dump_traceback_later()
        state = self.current.pop(nodeid, None)
        if state is None:
            return
        phases = state["phases"]
        if state["sub"] and "call" in phases:
            call = phases["call"]
            joined = "\n\n".join(state["sub"] + [call.get("longrepr", "")]).strip()
            call["longrepr"] = _cap(joined, self.longrepr_cap)
        failing = any(p["cat"] in ("failed", "error") for p in phases.values())
        self.emitter.emit({
            "k": "test",
            **self._planned_id(nodeid),
            "t": state["t"],
            "duration_s": state["duration_s"],
            "phases": phases,
            # Captured output is kept for failing tests only, as pytest shows it.
            "sections": state["sections"] if failing else [],
        })
