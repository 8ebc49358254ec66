"""JUnit XML of a suite report, shaped like pytest's own `--junitxml` output."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from farm.outcomes import FAILURES, Outcome
from farm.report.schema import counted_run, expand, quarantined_of

#: Characters XML 1.0 forbids (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF), plus the
#: DEL and C1 controls it discourages: all are dropped from every attribute and text.
_ILLEGAL_XML = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

#: Longest `message` attribute kept, as pytest's MESSAGE_ATTR_BUDGET; the element text is whole.
MESSAGE_BUDGET = 500

_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>\n'


def xml_safe(text: object) -> str:
    """`text` as a string with every character that XML 1.0 cannot carry removed."""
    return _ILLEGAL_XML.sub("", str(text))


def classname_and_name(nodeid: str) -> tuple[str, str]:
    """The JUnit (classname, name) pytest derives from a node id (its `mangle_test_address`).

    `tests/sub/test_a.py::TestC::test_m[1]` -> (`tests.sub.test_a.TestC`, `test_m[1]`);
    a collector `tests/test_broken.py` -> (``, `tests.test_broken`).
    """
    path, sep, tail = nodeid.partition("::")
    module = path.replace("/", ".")
    module = module.removesuffix(".py")
    if not sep:
        return "", module
    names, bracket, params = tail.partition("[")
    parts = [module, *names.split("::")]
    return ".".join(parts[:-1]), parts[-1] + bracket + params


def render_junit(report: Mapping[str, Any]) -> bytes:
    """The report (any form) as JUnit XML (UTF-8, with declaration), one `<testcase>` per test."""
    report = expand(report)
    tests = list(report.get("tests") or ())
    held = quarantined_of(report)
    counts = {o.value: 0 for o in Outcome}
    for test in tests:
        outcome = str(test.get("outcome", ""))
        if str(test.get("id", "")) in held and outcome in _FAILING:
            outcome = Outcome.SKIPPED.value  # written as a skip (see _quarantined): it does not fail the suite
        if outcome in counts:
            counts[outcome] += 1
    skipped = counts["skipped"] + counts["xfailed"] + counts["not_run"]
    suite = ET.Element(
        "testsuite",
        name="pytest",
        errors=str(counts["error"] + counts["timeout"] + counts["crashed"]),
        failures=str(counts["failed"]),
        skipped=str(skipped),
        tests=str(len(tests)),
        time=f"{float(report.get('duration_s') or 0.0):.3f}",
        timestamp=xml_safe(report.get("started_at") or ""),
        hostname=xml_safe(_hostname(report)),
    )
    if report.get("stages"):
        suite.append(_stage_properties(report["stages"]))
    for test in tests:
        suite.append(_testcase(test, held.get(str(test.get("id", "")))))
    root = ET.Element("testsuites", name="pytest tests")
    root.append(suite)
    return _DECLARATION + ET.tostring(root, encoding="unicode").encode("utf-8") + b"\n"


def _stage_properties(stages: Sequence[Mapping[str, Any]]) -> ET.Element:
    """A staged suite's `<properties>` (the testsuite's first child, as the JUnit schema has it): a
    `farm.stage.NAME` property per stage, in order, its status as the report's `stages` says it
    (passed, failed, not_started)."""
    props = ET.Element("properties")
    for row in stages:
        ET.SubElement(props, "property", name=xml_safe(f"farm.stage.{row.get('name', '')}"),
                      value=xml_safe(row.get("status", "")))
    return props


def _hostname(report: Mapping[str, Any]) -> str:
    """The hosts that ran the suite, comma-separated (pytest gives its one host)."""
    hosts = {str(w.get("host") or "") for w in report.get("workers") or ()}
    return ",".join(sorted(h for h in hosts if h))


_FAILING = {o.value for o in FAILURES}


def _testcase(test: Mapping[str, Any], quarantined: str | None = None) -> ET.Element:
    """A test's `<testcase>`; its `<properties>` (when it has any) say its stage (`farm.stage`),
    which run counted (`farm.run`), the id it ran as and why it is quarantined. A quarantined one
    (`quarantined`: why) has a `farm.quarantined` property; if it failed, its failure is written
    as a `<skipped type="farm.quarantined">` whose message says so and keeps the failure's (its
    text: the traceback), which CI tools show beside the test without failing the build, as
    pytest writes an xfail."""
    nodeid = str(test.get("id", ""))
    classname, name = classname_and_name(nodeid)
    case = ET.Element(
        "testcase",
        classname=xml_safe(classname),
        name=xml_safe(name),
        time=f"{float(test.get('duration_s') or 0.0):.3f}",
    )
    counted = counted_run(test)
    if counted is not None or test.get("ran_as") or quarantined is not None or test.get("stage"):
        props = ET.SubElement(case, "properties")
        if test.get("stage"):  # a staged suite's (--stage): the stage the test belongs to, run or not
            ET.SubElement(props, "property", name="farm.stage", value=xml_safe(test["stage"]))
        if counted is not None:
            ET.SubElement(props, "property", name="farm.run", value=f"{counted[0]} of {counted[1]}")
        if test.get("ran_as"):  # collected under another id on the runner (its parameter ids changed)
            ET.SubElement(props, "property", name="farm.ran_as", value=xml_safe(test["ran_as"]))
        if quarantined is not None:
            ET.SubElement(props, "property", name="farm.quarantined", value=xml_safe(quarantined))
    child = _result(test)
    if quarantined is not None and child is not None and str(test.get("outcome")) in _FAILING:
        child = _quarantined(test, child, quarantined)
    if child is not None:
        case.append(child)
    if counted is not None:
        case.extend(_other_runs(test, counted))
    return case


#: Outcomes of a run that Maven Surefire's rerun elements record: failures, and errors.
_RUN_FAILURES = {Outcome.FAILED.value}
_RUN_ERRORS = {Outcome.ERROR.value, Outcome.TIMEOUT.value, Outcome.CRASHED.value}


def _other_runs(test: Mapping[str, Any], counted: tuple[int, int]) -> list[ET.Element]:
    """The other runs of a test that ran more than once, as Maven Surefire records reruns.

    Each other run that failed or errored is a `<flakyFailure>`/`<flakyError>` when the test
    passed in the end, a `<rerunFailure>`/`<rerunError>` when it did not, its message saying
    which run it was (`run 1 of 3: failed on w1@host (s-...-a003)`). The run that counts is
    named by the testcase's `farm.run` property (`3 of 3`).
    """
    final_fails = str(test.get("outcome")) in {o.value for o in FAILURES}
    elements = []
    for row in test.get("attempts") or ():
        run, outcome = row.get("run"), str(row.get("outcome") or "")
        if run is None or run == counted[0] or outcome not in _RUN_FAILURES | _RUN_ERRORS:
            continue
        tag = ("rerun" if final_fails else "flaky") + ("Failure" if outcome in _RUN_FAILURES else "Error")
        where = f" on {row['worker']}" if row.get("worker") else ""
        message = f"run {run} of {counted[1]}: {outcome}{where} ({row.get('assignment')})"
        elements.append(_element(tag, {"message": message, "type": f"farm.{outcome}"}, ""))
    return elements


def _quarantined(test: Mapping[str, Any], failure: ET.Element, why: str) -> ET.Element:
    """A quarantined test's failure as a skip: `quarantined (listed): failed: assert 1 == 2`."""
    said = failure.get("message") or ""
    message = _shorten(f"quarantined ({why}): {test.get('outcome')}" + (f": {said}" if said else ""))
    return _element("skipped", {"type": "farm.quarantined", "message": message}, failure.text or "")


def _result(test: Mapping[str, Any]) -> ET.Element | None:
    """The child element for the test's outcome, or None for passed and xpassed."""
    outcome = str(test.get("outcome", ""))
    phase = str(test.get("phase") or "")
    message = str(test.get("message") or "").strip()
    longrepr = str(test.get("longrepr") or "")
    if outcome == Outcome.FAILED.value:
        return _element("failure", {"message": _shorten(message or _last_line(longrepr))}, longrepr or message)
    if outcome == Outcome.ERROR.value:
        if phase == "collect":
            attrs = {"message": "collection failure"}
        else:
            reason = message or _last_line(longrepr)
            when = phase if phase in ("teardown", "call") else "setup"
            attrs = {"message": _shorten(f'failed on {when} with "{reason}"')}
        return _element("error", attrs, longrepr or message)
    if outcome in (Outcome.TIMEOUT.value, Outcome.CRASHED.value):
        # Errors with a clear message: the test did not fail an assertion, it was stopped or died.
        return _element("error", {"type": f"farm.{outcome}", "message": _shorten(f"{outcome}: {message}")},
                        longrepr or message)
    if outcome == Outcome.SKIPPED.value:
        if phase == "collect":
            return _element("skipped", {"message": "collection skipped"}, longrepr or message)
        reason = message.removeprefix("Skipped: ")
        return _element("skipped", {"type": "pytest.skip", "message": reason}, longrepr)
    if outcome == Outcome.XFAILED.value:
        return _element("skipped", {"type": "pytest.xfail", "message": message.removeprefix("reason: ")}, "")
    if outcome == Outcome.NOT_RUN.value:
        reason = f"not run: {message}" if message else "not run"
        return _element("skipped", {"type": "farm.not_run", "message": reason}, "")
    return None


def _element(tag: str, attrs: dict[str, str], text: str) -> ET.Element:
    node = ET.Element(tag, {key: xml_safe(value) for key, value in attrs.items()})
    if text:
        node.text = xml_safe(text)
    return node


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _shorten(message: str) -> str:
    return message if len(message) <= MESSAGE_BUDGET else message[:MESSAGE_BUDGET] + "..."
