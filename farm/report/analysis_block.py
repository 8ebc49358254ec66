"""The terminal's "failure analysis" block: a line of counts per class, the tests of each under -v."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from farm.report.analysis import event_words
from farm.report.pytest_lines import separator

#: Events named on the infrastructure class's line; the rest are counted.
EVENTS_NAMED = 3
#: Tests listed per class under -v; the rest are counted.
TESTS_LISTED = 10

#: Each class's words for one and for several.
_WORDS = {
    "failed": ("test failure", "test failures"),
    "setup_teardown_error": ("setup/teardown error", "setup/teardown errors"),
    "timeout": ("timeout", "timeouts"),
    "crashed": ("crash", "crashes"),
    "infrastructure": ("infrastructure", "infrastructure"),
    "flaky": ("flaky", "flaky"),
}


def analysis_block(analysis: Mapping[str, Any] | None, *, verbose: bool = False) -> list[str]:
    """`failures: 2 test failures, 1 crash (blame: test), ...` under a banner, or nothing when
    nothing went wrong; `verbose`: then a line per class with its tests."""
    classes: Sequence[Mapping[str, Any]] = (analysis or {}).get("classes") or ()
    if not classes:
        return []
    lines = [separator("=", "failure analysis"), "failures: " + ", ".join(_counted(c) for c in classes)]
    if verbose:
        for entry in classes:
            tests = list(entry.get("tests") or ())
            if not tests:
                continue
            more = f" ... and {len(tests) - TESTS_LISTED} more" if len(tests) > TESTS_LISTED else ""
            name = str(entry.get("class"))
            lines.append(f"  {_WORDS.get(name, (name, name))[1]}: {', '.join(tests[:TESTS_LISTED])}{more}")
    return lines


def _counted(entry: Mapping[str, Any]) -> str:
    name, count = str(entry.get("class")), int(entry.get("count") or 0)
    one, many = _WORDS.get(name, (name, name))
    text = f"{count} {one if count == 1 else many}"
    detail: Mapping[str, Any] = entry.get("detail") or {}
    if name == "crashed":
        blame: Mapping[str, int] = detail.get("blame") or {}
        if len(blame) == 1:
            text += f" (blame: {next(iter(blame))})"
        elif blame:
            text += " (blame: " + ", ".join(f"{n} {who}" for who, n in sorted(blame.items())) + ")"
    elif name == "infrastructure":
        events = list(detail.get("events") or ())
        named = [event_words(e) for e in events[:EVENTS_NAMED]]
        if len(events) < count:  # tests farm gave up on outside any event
            named.append(event_words({"cause": "gave_up"}))
        if len(events) > EVENTS_NAMED:
            named.append(f"{len(events) - EVENTS_NAMED} more")
        text += f" ({', '.join(named)})"
    return text
