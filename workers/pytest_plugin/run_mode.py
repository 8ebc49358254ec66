"""Run mode: keep only the assigned tests, and a record per test as it starts and as it ends."""

from __future__ import annotations

import faulthandler
import os
import signal
import time
from typing import Any

import pytest

from .record_pipe import RecordPipe
from .renamed_params import match_renamed
from .report_text import cap, longrepr_text, message

#: Ids listed in a "missing" line's "collected".
_LISTED = 10


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


class RunRecorder:
    """Run mode: keep only the assigned tests, and report each as it finishes."""

    def __init__(self, config: Any, emitter: RecordPipe, wanted: list[str],
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
                "msg": message(report),
                "longrepr": longrepr_text(report, self.longrepr_cap),
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
                state["sub"].append(longrepr_text(report, self.longrepr_cap))
            return
        category = self.config.hook.pytest_report_teststatus(report=report, config=self.config)[0]
        state["duration_s"] += float(getattr(report, "duration", 0.0) or 0.0)
        phase: dict[str, Any] = {"cat": category or "", "s": float(getattr(report, "duration", 0.0) or 0.0)}
        if not report.passed or category in ("xpassed",):
            phase["msg"] = message(report)
            phase["longrepr"] = longrepr_text(report, self.longrepr_cap)
            if category == "failed" and self.config.option.tbstyle == "line":
                phase["longrepr"] = cap(f"{phase['longrepr']}\n{self._crash_line(report)}".strip(),
                                         self.longrepr_cap)
        state["phases"][report.when] = phase
        # Each phase's report carries the sections captured so far; the last one has them all.
        state["sections"] = [[name, cap(text, self.output_cap)] for name, text in report.sections]

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
            call["longrepr"] = cap(joined, self.longrepr_cap)
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
