"""The report built test by test from pages of records (coordinator/finishing.py, round 5) is
byte for byte the report main built from every record at once (`build_report` over `counted`):
its JSON text, and the JUnit XML and terminal summary made of it, on a suite with failures,
errors, skips, an xfail, a crash retried elsewhere, reruns (flaky and failing twice), a test
decided at collection and `--durations` with ties; over a real redis-server and the stub store.
The finish never reads every record at once (`counted`) and reads them in pages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from support.scenarios import MemoryWorld, RedisWorld, World

from coordinator import finishing
from farm.model import SessionInfo, TestRecord
from farm.outcomes import Outcome
from farm.report.build import build_report
from farm.report.junit import render_junit
from farm.report.schema import expand
from farm.report.terminal import render_summary

SID = "pages"
TESTS = tuple(f"t.py::test_{n}" for n in range(11)) + ("t.py::ünicode[é]",)
PAGE = 4  # a page smaller than the suite: several HMGETs, a last page not full

#: The first run's record of each test: outcome, phase, message, longrepr, sections, phases' times.
FIRST: dict[str, tuple[Outcome, str, str, str, tuple[tuple[str, str], ...], tuple[float, float, float]]] = {
    "t.py::test_0": (Outcome.PASSED, "call", "", "", (), (0.001, 0.25, 0.001)),
    "t.py::test_1": (Outcome.FAILED, "call", "assert 1 == 2", "E   assert 1 == 2", (("Captured stdout call", "hi\n"),),
                     (0.001, 0.25, 0.002)),  # flaky: passes when run again
    "t.py::test_2": (Outcome.FAILED, "call", "boom", "E   boom", (), (0.0, 0.5, 0.0)),  # fails twice
    "t.py::test_3": (Outcome.ERROR, "setup", "fixture 'db' not found", "E   fixture 'db' not found", (),
                     (0.25, 0.0, 0.0)),
    "t.py::test_4": (Outcome.SKIPPED, "setup", "no network", "", (), (0.001, 0.0, 0.0)),
    "t.py::test_5": (Outcome.XFAILED, "call", "known bug", "", (), (0.001, 0.125, 0.001)),
    "t.py::test_6": (Outcome.CRASHED, "call", "the runner died", "", (), (0.0, 0.0, 0.0)),  # retried on w2
    "t.py::test_7": (Outcome.PASSED, "call", "", "", (("Captured stderr call", "warn ✓\n"),), (0.002, 0.5, 0.001)),
    "t.py::test_8": (Outcome.XPASSED, "call", "fixed?", "", (), (0.0, 0.0625, 0.0)),
    "t.py::test_9": (Outcome.PASSED, "call", "", "", (), (0.0, 0.25, 0.0)),
    "t.py::test_10": (Outcome.PASSED, "call", "", "", (), (0.0, 0.0, 0.0)),
    "t.py::ünicode[é]": (Outcome.FAILED, "teardown", "tëardown ✗", "E   ✗", (), (0.001, 0.01, 0.125)),
}


def _record(test_id: str, outcome: Outcome | None = None) -> TestRecord:
    first, phase, message, longrepr, sections, (setup, call, teardown) = FIRST[test_id]
    return TestRecord(test_id, outcome or first, setup + call + teardown, phase, message, longrepr, sections,
                      started_at=1_800_000_000.5, setup_s=setup, call_s=call, teardown_s=teardown)


def _run(w: World, a: Any, worker: str, again: bool = False) -> None:
    """A worker runs the attempt: first runs as FIRST says; run again, test_1 (rerun: flaky)
    and test_6 (its crash retried) pass, the others fail as before."""
    w.take(a, worker)
    w.send(a, worker, *(_record(t, Outcome.PASSED if again and t in ("t.py::test_1", "t.py::test_6") else None)
                        for t in a.test_ids))
    w.complete(a, worker)
    w.hold_lease(a.suite_id, f"{a.assignment_id}#{a.attempt}", None)


def _before(w: World) -> str:
    """The report as main's finish built it: `build_report` over every counted record at once."""
    s = w.store
    fields = s.view(SID)
    spec = s.spec(SID)
    collection = s.collection(SID)
    attempts = s.attempts(SID)
    used = {a.worker for a in attempts} | ({collection.worker} if collection else set())
    report = build_report(
        spec=spec, status=fields.status, exit_code=int(s.field(SID, "exit_code") or 0),
        message=s.field(SID, "message") or "", started_at=float(s.field(SID, "submitted_at") or 0),
        finished_at=float(s.field(SID, "finished_at") or 0), collection=collection, order=s.order(SID),
        counted=s.counted(SID), runs=s.test_runs(SID), attempts=attempts,
        workers=[x for x in s.workers() if x.name in used], stopped=s.stop_reason(SID))
    return json.dumps(report, ensure_ascii=False)


def _scenario(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(finishing, "PAGE", PAGE, raising=False)
    pages: list[int] = []
    records_of = getattr(w.store, "records_of", None)  # main's stores have none

    def paged(suite_id: str, test_ids: Sequence[str]) -> list[TestRecord | None]:
        pages.append(len(test_ids))
        assert records_of is not None
        return records_of(suite_id, test_ids)

    def every_record(suite_id: str) -> None:
        raise AssertionError("the finish read every record at once")

    monkeypatch.setattr(w.store, "records_of", paged, raising=False)
    monkeypatch.setattr(w.store, "counted", every_record)

    w.add_worker("w1@h")
    w.add_worker("w2@h")
    w.submit(SID, rerun_failures=1)
    w.collect(SID, TESTS, session=SessionInfo(durations=4, python="3.11.2"),
              decided=(TestRecord("t.py::test_gone", Outcome.SKIPPED, 0.0, "collect", "skipped at collection"),))
    first = [a for a in w.published if a.suite_id == SID]
    ran = {a.assignment_id for a in first}
    for a in first:
        _run(w, a, "w1@h")
    while w.stored_report(SID) is None:  # the crash's retry, then the failures' rerun
        again = [a for a in w.published if a.assignment_id not in ran]
        assert again, "the suite neither finished nor ran anything again"
        for a in again:
            ran.add(a.assignment_id)
            _run(w, a, "w2@h", again=True)
    assert pages and max(pages) <= PAGE, pages
    monkeypatch.undo()

    after = w.stored_report(SID)
    assert after is not None
    before = _before(w)
    assert after.encode() == before.encode()
    report = expand(json.loads(after))
    outcomes = {t["id"]: t["outcome"] for t in report["tests"]}
    # The scenario is what it says (else the comparison would prove less).
    assert {"failed", "error", "skipped", "xfailed", "xpassed", "passed"} <= set(outcomes.values()), outcomes
    assert outcomes["t.py::test_1"] == "flaky" and outcomes["t.py::test_2"] == "failed"
    assert outcomes["t.py::test_6"] == "passed" and outcomes["t.py::test_gone"] == "skipped"
    assert [t["blame"] for t in report["tests"] if t["id"] == "t.py::test_6"] == ["worker"]
    assert [d[0] for d in report["durations"]] == [0.5, 0.5, 0.25, 0.25]  # ties at the cut
    assert render_junit(report) == render_junit(expand(json.loads(before)))
    assert render_summary(report) == render_summary(expand(json.loads(before)))


def test_paged_report_is_mains_over_redis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _scenario(RedisWorld(redis_url), monkeypatch)


def test_paged_report_is_mains_over_the_stub_store(monkeypatch: pytest.MonkeyPatch) -> None:
    _scenario(MemoryWorld(), monkeypatch)
