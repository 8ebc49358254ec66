"""Run mode: keep only the assigned tests, and a record per test as it starts and as it ends.

The hot path is a line per test: `S<i> <t>` when test i of the tests file starts (its start marker),
`P<i> <setup_s> <call_s> <teardown_s>` when it ends in a plain pass, a JSON line otherwise. A test's
end line is held and written with the next start marker (one write per test), the last test's at
once. The per-test timeout is one faulthandler watchdog, re-armed only every `slack` seconds."""

from __future__ import annotations

import faulthandler
import gc
import os
import signal
import time
from typing import Any

import pytest

from .record_pipe import RecordPipe, json_line
from .renamed_params import match_renamed
from .report_text import cap, longrepr_text, message

#: Ids listed in a "missing" line's "collected".
_LISTED = 10
#: The phase categories of a plain pass, sent as a compact `P` line.
_PASSED = ("", "passed", "")


def read_tests_file(data: Any) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """The assigned ids, and the planned (index, count) of those with parameters."""
    if isinstance(data, list):
        return [str(t) for t in data], {}
    ids = [str(t) for t in data.get("ids", [])]
    positions = {}
    for test_id, pos in zip(ids, data.get("positions") or [], strict=False):
        if isinstance(pos, list) and len(pos) == 2 and pos[0] >= 0:
            positions[test_id] = (int(pos[0]), int(pos[1]))
    return ids, positions


def only_pytest_status(config: Any) -> bool:
    """Whether every implementation of pytest_report_teststatus is pytest's own (no plugin or
    conftest.py gives a category of its own)."""
    try:
        impls = config.hook.pytest_report_teststatus.get_hookimpls()
        return all(str(getattr(impl.function, "__module__", "")).startswith("_pytest.") for impl in impls)
    except Exception:  # another pluggy: ask the hook every time
        return False


class RunRecorder:
    """Run mode: keep only the assigned tests, and report each as it finishes."""

    def __init__(self, config: Any, emitter: RecordPipe, wanted: list[str],
                 positions: dict[str, tuple[int, int]] | None = None) -> None:
        self.config = config
        self.emitter = emitter
        self.wanted = set(wanted)
        self.index: dict[str, int] = {}  # id -> its (first) position in the tests file: compact lines name it so
        for i, test_id in enumerate(wanted):
            self.index.setdefault(test_id, i)
        self.last = ""  # the last item to run: its end line is written at once
        self.positions = positions or {}
        self.planned: dict[str, str] = {}  # id collected -> the planned id it runs as (renamed tests)
        self.output_cap = int(os.environ.get("FARM_OUTPUT_CAP", "65536"))
        self.longrepr_cap = int(os.environ.get("FARM_LONGREPR_CAP", "262144"))
        self.current: dict[str, dict[str, Any]] = {}
        # Whether a phase that plainly passed may skip the pytest_report_teststatus hook (three
        # hook calls a test, a tenth of the plugin's cost): only when pytest's own plugins are the
        # hook's only implementations (decided once collection has loaded every conftest.py).
        self.plain_status = False
        self.timeout = float(os.environ.get("FARM_TEST_TIMEOUT") or 0)
        # faulthandler starts a watchdog thread per arming (and joins it per cancel): armed for
        # timeout + slack, it is re-armed only once a test starts less than `timeout` before it
        # fires, so a test is stopped between `timeout` and `timeout + slack` after it started.
        self.slack = min(1.0, self.timeout / 10)
        self.armed_until = 0.0  # monotonic time the watchdog fires (0: not armed)
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
        self.last = keep[-1].nodeid if keep else ""
        self.plain_status = only_pytest_status(config)
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
                "msg": message(report),
                "longrepr": longrepr_text(report, self.longrepr_cap),
            })

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        now = time.time()
        self.current[nodeid] = {"t": now, "duration_s": 0.0, "phases": {}, "sections": (), "sub": []}
        index = self.index.get(nodeid)
        if index is None or nodeid in self.planned:
            self.emitter.emit({"k": "start", **self._planned_id(nodeid), "t": now})
        else:
            self.emitter.write(f"S{index} {now!r}\n")  # with the last test's end line, held till now
        if self.stack_file is not None and self.timeout > 0:  # armed after the start line: the worker knows which
            ticks = time.monotonic()
            if ticks + self.timeout > self.armed_until:
                faulthandler.dump_traceback_later(self.timeout + self.slack, exit=True, file=self.stack_file)
                self.armed_until = ticks + self.timeout + self.slack

    @pytest.hookimpl(trylast=True)
    def pytest_exception_interact(self) -> None:
        # pytest's faulthandler plugin cancels the watchdog on every failing phase (it means it
        # for pdb): armed again for what was left of it, so a test after a failure still stops.
        if self.armed_until and self.stack_file is not None:
            left = max(self.armed_until - time.monotonic(), 0.001)
            faulthandler.dump_traceback_later(left, exit=True, file=self.stack_file)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: Any) -> None:
        if self.armed_until:
            faulthandler.cancel_dump_traceback_later()
            self.armed_until = 0.0
        self.emitter.flush()

    def pytest_unconfigure(self, config: Any) -> None:
        self.emitter.flush()
        # The session is over and its records are out: what is left is frozen, so the
        # interpreter's last garbage collection skips it. The worker waits for the runner's exit
        # before it completes the attempt, and that collection over pytest and the project's
        # modules took 0.15-0.3 s (0.04-0.05 s frozen) on 2 cores at load 11; atexit handlers
        # (coverage's, say) still run.
        gc.freeze()

    def pytest_runtest_logreport(self, report: Any) -> None:
        state = self.current.get(report.nodeid)
        if state is None:
            return
        if getattr(report, "context", None) is not None:  # a subtest's report (pytest >= 9)
            if report.failed:
                state["sub"].append(longrepr_text(report, self.longrepr_cap))
            return
        if self.plain_status and report.passed and not state["sub"] and not hasattr(report, "wasxfail"):
            # What pytest's own implementations answer for such a report (runner: "" for setup
            # and teardown; terminal: its outcome for the call; pytest 9's subtests changes a
            # passed call only when a subtest failed, and `sub` holds those).
            category = "passed" if report.when == "call" else ""
        else:
            category = self.config.hook.pytest_report_teststatus(report=report, config=self.config)[0]
        seconds = float(getattr(report, "duration", 0.0) or 0.0)
        state["duration_s"] += seconds
        phase: dict[str, Any] = {"cat": category or "", "s": seconds}
        if not report.passed or category in ("xpassed",):
            phase["msg"] = message(report)
            phase["longrepr"] = longrepr_text(report, self.longrepr_cap)
            if category == "failed" and self.config.option.tbstyle == "line":
                phase["longrepr"] = cap(f"{phase['longrepr']}\n{self._crash_line(report)}".strip(),
                                         self.longrepr_cap)
        state["phases"][report.when] = phase
        # Each phase's report carries the sections captured so far; the last one has them all.
        state["sections"] = report.sections

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
        state = self.current.pop(nodeid, None)
        if state is None:
            return
        line = self._end_line(nodeid, state)
        if nodeid == self.last:
            self.emitter.write(line)
        else:
            self.emitter.hold(line)  # goes out with the next start marker

    def _end_line(self, nodeid: str, state: dict[str, Any]) -> str:
        phases = state["phases"]
        index = self.index.get(nodeid)
        if not state["sub"] and index is not None and nodeid not in self.planned and len(phases) == 3:
            setup, call, teardown = phases.get("setup"), phases.get("call"), phases.get("teardown")
            if setup and call and teardown and (setup["cat"], call["cat"], teardown["cat"]) == _PASSED \
                    and len(setup) == len(call) == len(teardown) == 2:  # no message, no report
                return f"P{index} {setup['s']!r} {call['s']!r} {teardown['s']!r}\n"
        if state["sub"] and "call" in phases:
            call = phases["call"]
            joined = "\n\n".join(state["sub"] + [call.get("longrepr", "")]).strip()
            call["longrepr"] = cap(joined, self.longrepr_cap)
        failing = any(p["cat"] in ("failed", "error") for p in phases.values())
        return json_line({
            "k": "test",
            **self._planned_id(nodeid),
            "t": state["t"],
            "duration_s": state["duration_s"],
            "phases": phases,
            # Captured output is kept for failing tests only, as pytest shows it.
            "sections": [[name, cap(text, self.output_cap)] for name, text in state["sections"]] if failing else [],
        })
