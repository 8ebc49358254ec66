"""Run mode: the fence of run-time balancing (the worker asks the runner to leave its tail to another slot).

FARM_FENCE_FILE names a JSON file {"seq": N, "tail": [ids]} the worker may write while the runner
runs; FARM_FENCE_REPLY the file this module answers in, {"seq": N, "cut": [ids]}: the tests it
will not run (none: it refuses, every test of the tail started already). A thread polls the fence
file every POLL_S (one os.stat), so a fence is answered even while a long test runs; the cut
starts after the test running then (or the first tail test not started, if later) and runs to
the end of the session's items. The runner stops before the first test of the cut: that test's
protocol is not run and the items after it are dropped, so the session ends as if they had not
been collected (exit code 0, 1 or 5). The answer is written, under the same lock the main thread
takes before each test, before any test at or past the cut could be reached: once the worker
reads a cut, none of it runs here.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import pytest

#: How often the fence file is looked at (one os.stat).
POLL_S = 0.05


class Fence:
    """Stops the session before the first test of a cut the worker asked for."""

    def __init__(self, path: str, reply: str, recorder: Any = None) -> None:
        self.path, self.reply = path, reply
        self.recorder = recorder  # its `planned`: id collected -> the planned id it runs as (renamed tests)
        self.lock = threading.Lock()
        self.items: list[Any] = []  # the session's items (the list the run loop walks)
        self.index: dict[int, int] = {}  # id(item) -> its position
        self.current = -1  # the position of the test running, or last run
        self.cut: int | None = None  # the first position not to run
        self.seen: tuple[int, int, int] | None = None
        self.done = threading.Event()

    def _id(self, item: Any) -> str:
        planned = getattr(self.recorder, "planned", None)
        return planned.get(item.nodeid, item.nodeid) if isinstance(planned, dict) else str(item.nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: Any) -> None:
        with self.lock:
            self.items = session.items
            self.index = {id(item): i for i, item in enumerate(session.items)}
        threading.Thread(target=self._watch, name="farm-fence", daemon=True).start()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> bool | None:
        with self.lock:
            i = self.index.get(id(item), self.current + 1)
            if self.cut is not None and i >= self.cut:
                del self.items[i:]  # the run loop ends after this item, which does not run
                return True
            self.current = i
        return None

    def pytest_sessionfinish(self) -> None:
        self.done.set()

    def _watch(self) -> None:
        while not self.done.wait(POLL_S):
            try:
                st = os.stat(self.path)
            except OSError:
                continue
            mark = (st.st_mtime_ns, st.st_size, st.st_ino)
            if mark == self.seen:
                continue
            self.seen = mark
            try:
                with open(self.path, encoding="utf-8") as fh:
                    data = json.load(fh)
                seq, tail = int(data["seq"]), {str(t) for t in data["tail"]}
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being written (it is renamed into place whole): read again
            self.answer(seq, tail)

    def answer(self, seq: int, tail: set[str]) -> list[str]:
        """Cut before the first test of `tail` not started yet; write and return what was cut."""
        with self.lock:
            end = len(self.items) if self.cut is None else self.cut
            first = next((i for i in range(self.current + 1, end) if self._id(self.items[i]) in tail), None)
            cut: list[str] = []
            if first is not None:
                self.cut = first
                cut = [self._id(item) for item in self.items[first:end]]
            tmp = f"{self.reply}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"seq": seq, "cut": cut}, fh)
            os.replace(tmp, self.reply)
            return cut


def register(config: Any) -> None:
    """Install the fence if the worker gave its files (run mode, local backend)."""
    path, reply = os.environ.get("FARM_FENCE_FILE"), os.environ.get("FARM_FENCE_REPLY")
    if not path or not reply:
        return
    recorder = config.pluginmanager.get_plugin("farm-recorder")
    config.pluginmanager.register(Fence(path, reply, recorder), "farm-fence")
