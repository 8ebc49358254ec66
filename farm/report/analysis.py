"""Failure analysis (pure): what went wrong in a suite, in classes, from its report's full view.

`analyse(report)` reads the full view (`farm.report.schema.expand`: tests with their attempt
entries, assignments with state, message and worker, suspect workers) and returns the report's
top-level `analysis`: `{"classes": [{"class", "count", "tests", "detail"}]}`, only the classes
that have something, in CLASSES order. Each class's rule is in docs/how-it-works.md, "Failure
analysis". It reads nothing but the report, so it is a function of the suite's event log as the
report is; `expand` adds it on read, and the stored document never holds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: The classes, in the order the report and the summary list them.
CLASSES = ("failed", "setup_teardown_error", "timeout", "crashed", "infrastructure", "flaky")

#: Attempt states that are infrastructure events whatever their message.
_MOVED_ON = ("lost", "handback")
#: Suite statuses and attempt states under which a test that did not run was meant not to run.
_MEANT_NOT_TO_RUN_SUITE = ("canceled", "deadline")
_MEANT_NOT_TO_RUN_ATTEMPT = ("canceled", "deadline", "stopped")
#: Pseudo-assignments of the coordinator's own `not_run` verdicts at a cancel or the deadline, and
#: of a staged suite's tests whose stage never started (coordinator/planner.py: _stage_ended).
_VERDICTS = ("cancel", "deadline", "stage")
#: Beginnings of a `failed` attempt's (and its `not_run` tests') message that are no
#: infrastructure: the suite was canceled or had no time left (coordinator/machine.py: give_up).
_NOT_INFRASTRUCTURE = ("suite canceled", "not run: no time left")

#: An infrastructure attempt's cause, from its message: (cause, words in the message), first match.
_CAUSES = (
    ("vm_panic", "kernel panic or oops"),
    ("worker_error", "worker error on "),
    ("runner_failed", "runner exited with code "),
    ("runner_died", "runner died "),
    ("lost_too_often", "its assignment was lost "),
    ("stopped_too_often", "its assignment was stopped "),
    ("assignment_deadline", "assignment deadline of "),
    ("worker_stopped", "stopped before the assignment ended"),
    ("records_lost", "never arrived"),
)
#: How the summary names an event of each cause; `{w}` is the worker.
_EVENT_WORDS = {
    "lost": "worker {w} lost",
    "vm_panic": "VM panic on {w}",
    "worker_error": "worker error on {w}",
    "runner_failed": "runner failed on {w}",
    "runner_died": "runner kept dying on {w}",
    "lost_too_often": "given up after lost attempts",
    "stopped_too_often": "given up after hand-backs",
    "assignment_deadline": "assignment deadline on {w}",
    "worker_stopped": "worker {w} stopped",
    "records_lost": "records lost from {w}",
    "handback": "hand-back from {w}",
    "failed": "attempt failed on {w}",
    "suspect_worker": "suspect worker {w}",
    "gave_up": "not run: farm gave up",
}


def analyse(report: Mapping[str, Any]) -> dict[str, Any]:
    """The failure analysis of a report's full view (docs/report-schema.md, `analysis`)."""
    tests: Sequence[Mapping[str, Any]] = report.get("tests") or ()
    assignments: Sequence[Mapping[str, Any]] = report.get("assignments") or ()
    state_of = {(a.get("id"), a.get("attempt")): str(a.get("state") or "") for a in assignments}
    found: dict[str, list[str]] = {name: [] for name in CLASSES}
    phases: dict[str, int] = {}
    timeouts: dict[str, int] = {}
    blames: dict[str, int] = {}
    flakes: dict[str, int] = {}
    gave_up: list[str] = []
    for test in tests:
        test_id, outcome = str(test.get("id", "")), test.get("outcome")
        if outcome == "failed":
            found["failed"].append(test_id)
        elif outcome == "error":
            found["setup_teardown_error"].append(test_id)
            _count(phases, str(test.get("phase") or "setup"))
        elif outcome == "timeout":
            found["timeout"].append(test_id)
            _count(timeouts, _timeout_kind(str(test.get("message") or "")))
        elif outcome == "crashed":
            found["crashed"].append(test_id)
            _count(blames, str(test.get("blame") or "unknown"))
        elif outcome == "flaky":
            found["flaky"].append(test_id)
            _count(flakes, "rerun")
        elif outcome == "passed" and test.get("blame") == "worker":
            found["flaky"].append(test_id)  # crashed on one worker, passed on another
            _count(flakes, "worker_crash")
        elif outcome == "not_run" and _gave_up(test, report, state_of):
            gave_up.append(test_id)
    events = _infrastructure_events(report, assignments)
    affected = {t for event in events for t in event.pop("_tests")}
    gave_up = [t for t in gave_up if t not in affected]  # the rest are an event's already
    affected.update(gave_up)
    found["infrastructure"] = [str(t.get("id", "")) for t in tests if t.get("id") in affected]
    details: dict[str, dict[str, Any]] = {
        "setup_teardown_error": {"phases": phases},
        "timeout": {"kinds": timeouts},
        "crashed": {"blame": blames},
        "flaky": {"kinds": flakes},
        "infrastructure": {"events": events, "gave_up": gave_up},
    }
    classes = []
    for name in CLASSES:
        if name == "infrastructure":
            count = len(events) + len(gave_up)
            if not count:
                continue
        else:
            count = len(found[name])
            if not count:
                continue
        entry: dict[str, Any] = {"class": name, "count": count, "tests": found[name]}
        if name in details:
            entry["detail"] = details[name]
        classes.append(entry)
    return {"classes": classes}


def event_words(event: Mapping[str, Any]) -> str:
    """How the summary names an infrastructure event, e.g. `worker w2@host lost`."""
    words = _EVENT_WORDS.get(str(event.get("cause")), "{w}")
    return words.format(w=event.get("worker") or "its worker")


def _infrastructure_events(report: Mapping[str, Any],
                           assignments: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The attempts that the environment ended (lost, handed back, failed not by a cancel or the
    deadline), then the suspect workers: each with the tests it touched (under `_tests`, taken out
    by the caller)."""
    events: list[dict[str, Any]] = []
    for a in assignments:
        state, message = str(a.get("state") or ""), str(a.get("message") or "")
        if state not in _MOVED_ON and not (state == "failed" and not message.startswith(_NOT_INFRASTRUCTURE)):
            continue
        default = state if state in _MOVED_ON else "failed"
        cause = "lost" if state == "lost" else next((c for c, words in _CAUSES if words in message), default)
        events.append({"cause": cause, "assignment": a.get("id"), "attempt": a.get("attempt"),
                       "worker": a.get("worker"), "state": state, "message": message.split("\n", 1)[0],
                       "_tests": list(a.get("tests") or ())})
    for suspect in report.get("suspect_workers") or ():
        names = list(suspect.get("tests") or ())
        events.append({"cause": "suspect_worker", "worker": suspect.get("worker"), "tests": names, "_tests": names})
    return events


def _gave_up(test: Mapping[str, Any], report: Mapping[str, Any], state_of: Mapping[tuple[Any, Any], str]) -> bool:
    """Whether a `not_run` test is one farm could not run (infrastructure), not one the suite's
    cancel, deadline or -x/--maxfail meant not to run."""
    if report.get("status") in _MEANT_NOT_TO_RUN_SUITE or report.get("stopped"):
        return False
    if str(test.get("message") or "").startswith(_NOT_INFRASTRUCTURE):
        return False
    attempts = list(test.get("attempts") or ())
    if not attempts:
        return True
    last = attempts[-1]
    if last.get("assignment") in _VERDICTS:
        return False
    return state_of.get((last.get("assignment"), last.get("attempt"))) not in _MEANT_NOT_TO_RUN_ATTEMPT


def _timeout_kind(message: str) -> str:
    if "suite deadline" in message:
        return "suite_deadline"
    if "assignment's deadline" in message:
        return "assignment_deadline"
    return "test_timeout"


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1
