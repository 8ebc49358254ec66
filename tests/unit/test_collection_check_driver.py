"""workers.runner.run_assignment checks each runner's collection against the cached one: the
runner is told each file's planned item count, and a disagreement it reports is heard once."""

from __future__ import annotations

import json

import pytest

from farm.config import Settings
from farm.errors import UsageError
from farm.model import Assignment
from workers.backends.base import RunRequest
from workers.backends.base import tests_file_text as farm_tests_file
from workers.backends.stub import PassRest, StubBackend, StubRun
from workers.runner import KeptRecords, run_assignment

IDS = ("t.py::a", "t.py::b", "u.py::c")


class _Telling(StubBackend):
    """A stub whose runners first write the given plugin lines."""

    def __init__(self, *lines: dict[str, object]) -> None:
        super().__init__([PassRest()])
        self.lines = lines

    def start(self, request: RunRequest) -> StubRun:
        run = super().start(request)
        run.events[:0] = [(0.0, "line", line) for line in self.lines]
        return run


def _run(backend: StubBackend, planned: dict[str, int] | None) -> list[str]:
    heard: list[str] = []
    sink = KeptRecords()
    run_assignment(Assignment("s1", "s1-a000", 1, "digest", ("-q",), IDS), backend=backend,
                   bundle=lambda digest: "/bundle.tar.gz", sink=sink, worker="w1", settings=Settings(),
                   is_canceled=lambda: False, clock=backend.clock, planned_files=planned, on_stale=heard.append)
    backend.completions = sink.completions  # type: ignore[attr-defined]
    return heard


def test_each_runner_is_told_the_planned_items_of_its_files() -> None:
    backend = _Telling()
    assert _run(backend, {"t.py": 2, "u.py": 5, "v.py": 1}) == []
    request = backend.requests[0]
    assert request.planned_files == (("t.py", 2), ("u.py", 5))
    assert json.loads(farm_tests_file(request)) == {"ids": list(IDS), "files": {"t.py": 2, "u.py": 5}}


def test_a_stale_file_a_missing_test_or_a_renamed_one_is_heard_once() -> None:
    backend = _Telling({"k": "stale", "id": "u.py", "planned": 5, "collected": 6},
                       {"k": "missing", "id": "t.py::a", "collected": [], "more": 0},
                       {"k": "start", "id": "t.py::b", "ran_as": "t.py::b2"})
    heard = _run(backend, {"t.py": 2, "u.py": 5})
    why = "u.py: 6 items collected, 5 planned; t.py::a was not collected; t.py::b was collected as t.py::b2"
    assert heard == [why]
    [completion] = backend.completions  # type: ignore[attr-defined]
    assert (completion.state, completion.message) == ("done", f"collected otherwise than the cached collection: {why}")


def test_without_a_cached_collection_nothing_is_checked() -> None:
    backend = _Telling({"k": "missing", "id": "t.py::a", "collected": [], "more": 0})
    assert _run(backend, None) == []
    assert backend.requests[0].planned_files == ()
    assert json.loads(farm_tests_file(backend.requests[0])) == list(IDS)


def test_the_collection_cache_setting_reads_0_and_1_and_refuses_anything_else() -> None:
    assert Settings.from_env({}).collection_cache is True
    assert Settings.from_env({"FARM_COLLECTION_CACHE": "0"}).collection_cache is False
    assert Settings.from_env({"FARM_COLLECTION_CACHE": "on"}).collection_cache is True
    with pytest.raises(UsageError, match="FARM_COLLECTION_CACHE must be 0 or 1"):
        Settings.from_env({"FARM_COLLECTION_CACHE": "maybe"})
