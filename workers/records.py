"""Turns the runner plugin's JSON lines into TestRecords (pure: no I/O)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from farm.model import SessionInfo, TestRecord
from farm.outcomes import Outcome, fold_phases


@dataclass
class CollectResult:
    """What a collect-mode run reported."""

    test_ids: list[str] = field(default_factory=list)
    decided: list[TestRecord] = field(default_factory=list)
    session: SessionInfo = SessionInfo()


def parse_line(line: bytes) -> dict[str, Any] | None:
    """One plugin line as a dict, or None when it is not a well-formed record line."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("k"), str) or not isinstance(obj.get("id"), str):
        return None
    return obj


class LineReader:
    """Reads one runner's lines: JSON lines (parse_line), and the compact lines of run mode, which
    name a test by its position `i` in the runner's tests file (`test_ids`):

        S<i> <t>                            test i starts (t: epoch seconds)
        P<i> <setup_s> <call_s> <teardown_s>  test i passed (no output kept, no message)

    A compact line becomes {"k": "start", "id", "t"} or {"k": "pass", "id", "s": (setup, call,
    teardown)}; a malformed one (an unknown position, a number that is not finite) None, as a
    malformed JSON line is."""

    def __init__(self, test_ids: Sequence[str]) -> None:
        self.test_ids = test_ids

    def read(self, line: bytes) -> dict[str, Any] | None:
        head = line[:1]
        if head == b"S" or head == b"P":
            return self._compact(head, line[1:].split(b" "))
        return parse_line(line)

    def _compact(self, head: bytes, words: list[bytes]) -> dict[str, Any] | None:
        try:
            index = int(words[0])
            numbers = [float(w) for w in words[1:]]
        except ValueError:
            return None
        if not 0 <= index < len(self.test_ids) or not all(map(math.isfinite, numbers)):
            return None
        if head == b"S" and len(numbers) == 1:
            return {"k": "start", "id": self.test_ids[index], "t": numbers[0]}
        if head == b"P" and len(numbers) == 3:
            return {"k": "pass", "id": self.test_ids[index], "s": numbers}
        return None


def passed_record(test_id: str, started_at: float, setup_s: float, call_s: float, teardown_s: float) -> TestRecord:
    """A plain pass (a "pass" line of LineReader), as the JSON "test" line of it would read."""
    return TestRecord(test_id, Outcome.PASSED, 0.0 + setup_s + call_s + teardown_s, "call", started_at=started_at,
                      setup_s=max(0.0, setup_s), call_s=max(0.0, call_s), teardown_s=max(0.0, teardown_s))


def test_record(obj: dict[str, Any]) -> TestRecord:
    """A finished test's line ("k": "test") as a TestRecord."""
    phases: dict[str, dict[str, Any]] = obj.get("phases") or {}
    cats = {when: str(p.get("cat", "")) for when, p in phases.items()}
    outcome = fold_phases(cats.get("setup", ""), cats.get("call", ""), cats.get("teardown", ""))
    deciding = _deciding_phase(outcome, cats)
    detail = phases.get(deciding, {})
    longrepr = str(detail.get("longrepr", ""))
    if deciding == "call" and cats.get("teardown") in ("error", "failed"):
        # Pytest counts this twice (failed + error); farm keeps one outcome, and both reports.
        longrepr = f"{longrepr}\n\n[teardown]\n{phases['teardown'].get('longrepr', '')}".strip()
    return TestRecord(
        test_id=obj["id"],
        outcome=outcome,
        duration_s=float(obj.get("duration_s", 0.0)),
        phase=deciding,
        message=str(detail.get("msg", "")),
        longrepr=longrepr,
        sections=tuple((str(n), str(t)) for n, t in obj.get("sections", [])),
        started_at=float(obj.get("t", 0.0)),
        setup_s=_seconds(phases.get("setup")),
        call_s=_seconds(phases.get("call")),
        teardown_s=_seconds(phases.get("teardown")),
        ran_as=str(obj.get("ran_as") or ""),
    )


def _seconds(phase: Any) -> float:
    try:
        return max(0.0, float(phase.get("s", 0.0))) if isinstance(phase, dict) else 0.0
    except (TypeError, ValueError):
        return 0.0


def session_info(obj: dict[str, Any]) -> SessionInfo:
    """A collection's session line ("k": "session") as SessionInfo; a malformed field keeps its default."""
    defaults = SessionInfo()
    values: dict[str, Any] = {}
    for name, default in vars(defaults).items():
        value = obj.get(name, default)
        if isinstance(default, float) and type(value) is int:
            value = float(value)
        values[name] = value if type(value) is type(default) else default
    return SessionInfo(**values)


def collect_record(obj: dict[str, Any]) -> TestRecord:
    """A failed or skipped collector ("k": "collect") as a TestRecord for its node id."""
    return TestRecord(
        test_id=obj["id"],
        outcome=Outcome.ERROR if obj.get("cat") == "error" else Outcome.SKIPPED,
        phase="collect",
        message=str(obj.get("msg", "")),
        longrepr=str(obj.get("longrepr", "")),
    )


def crashed_record(test_id: str, started_at: float, now: float, why: str, output: str = "") -> TestRecord:
    """The record of a test during which the runner died."""
    return TestRecord(
        test_id=test_id,
        outcome=Outcome.CRASHED,
        duration_s=max(0.0, now - started_at),
        phase="call",
        message=why,
        longrepr=f"{why}\n\nlast output of the runner:\n{output}" if output else why,
        started_at=started_at,
    )


def timeout_record(test_id: str, started_at: float, now: float, why: str, stacks: str) -> TestRecord:
    """The record of a test stopped for running too long, with the stacks of where it hung."""
    return TestRecord(
        test_id=test_id,
        outcome=Outcome.TIMEOUT,
        duration_s=max(0.0, now - started_at),
        phase="call",
        message=why,
        longrepr=f"{why}; where every thread was:\n\n{stacks}",
        started_at=started_at,
    )


def missing_why(test_id: str, collected: object, more: object = 0, planned: object = None) -> str:
    """Why an assigned test was not collected, naming what the runner collected instead.

    `collected`: the first ids the runner collected for the test's function (or, when none,
    for its module); `more`: how many more there were; `planned`: how many items the
    function had in the plan (None: unknown)."""
    ids = [str(t) for t in collected] if isinstance(collected, list) else []
    if not ids:
        return "not collected on the worker (was it collected with different options or files?)"
    extra = _count(more)
    function = test_id.partition("[")[0]
    scope = function if all(t.startswith(function + "[") for t in ids) else test_id.split("::", 1)[0]
    listed = ", ".join(ids) + (f" and {extra} more" if extra else "")
    plan = f" (the plan had {_count(planned)})" if planned is not None and scope == function else ""
    return (f"not collected on the worker; for {scope} it collected {len(ids) + extra}{plan}: {listed} "
            f"(do the parameter ids change between collections, or was it collected with other options?)")


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def missing_record(test_id: str, why: str) -> TestRecord:
    """The record of an assigned test that the runner did not collect."""
    return TestRecord(test_id=test_id, outcome=Outcome.ERROR, phase="collect", message=why, longrepr=why)


def _deciding_phase(outcome: Outcome, cats: dict[str, str]) -> str:
    if cats.get("setup") in ("error", "failed", "skipped", "xfailed"):
        if outcome is Outcome.ERROR and cats.get("setup") in ("skipped", "xfailed"):
            return "teardown"
        return "setup"
    if outcome is Outcome.ERROR and cats.get("call") not in ("error",):
        return "teardown"
    return "call" if "call" in cats else "setup"


def collect_result(lines: list[dict[str, Any]]) -> CollectResult:
    """Fold a collect-mode run's lines into the collected ids and the outcomes already decided."""
    result = CollectResult()
    for obj in lines:
        if obj["k"] == "item":
            result.test_ids.append(obj["id"])
        elif obj["k"] == "collect":
            result.decided.append(collect_record(obj))
        elif obj["k"] == "session":
            result.session = session_info(obj)
    return result
