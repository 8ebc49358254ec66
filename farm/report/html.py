"""The HTML report (`--html FILE`): one self-contained page made from the full-view report and the
suite's event log, its data one JSON blob that the page's own script renders (no network fetch)."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from farm.events import Event
from farm.outcomes import Outcome
from farm.report.html_page import PAGE
from farm.report.timeline import build_timeline, figures

#: Outcomes in the order the page lists them (the terminal summary's order).
OUTCOMES = [o.value for o in Outcome]
#: Report fields the page shows as they are, when the report has them (other branches add them).
OPTIONAL = ("gates", "stages", "leaks", "analysis", "quarantined", "quarantine_unknown")


def page_data(report: Mapping[str, Any], events: Sequence[Event]) -> dict[str, Any]:
    """What the page renders: the report's summary, its tests in columns (details only for those that
    have some), the timeline's lanes, bars and segments, and the figures."""
    tests = report.get("tests") or []
    outcome_index = {o: i for i, o in enumerate(OUTCOMES)}
    timeline = build_timeline(report, events)
    fig = figures(report)
    names = sorted({s.worker for s in timeline.segments} | {s.node for s in timeline.segments}
                   | {b.worker for b in timeline.bars} | {b.node for b in timeline.bars})
    name_index = {n: i for i, n in enumerate(names)}
    details = {}
    for i, t in enumerate(tests):
        if t.get("longrepr") or t.get("sections") or t.get("blame") or t.get("crashed_on"):
            details[str(i)] = {"phase": t.get("phase"), "longrepr": t.get("longrepr") or "",
                               "sections": t.get("sections") or [], "blame": t.get("blame"),
                               "crashed_on": t.get("crashed_on") or []}
    data: dict[str, Any] = {
        "suite": {k: report.get(k) for k in ("suite_id", "project", "pool", "status", "exit_code", "message",
                                             "pytest_args", "started_at", "finished_at", "duration_s", "stopped")},
        "summary": report.get("summary") or {},
        "outcomes": OUTCOMES,
        "tests": {"id": [t["id"] for t in tests],
                  "o": [outcome_index.get(t.get("outcome", ""), 0) for t in tests],
                  "d": [round(float(t.get("duration_s") or 0.0), 6) for t in tests],
                  "m": [t.get("message") or "" for t in tests],
                  "n": [len(t.get("attempts") or []) for t in tests],
                  **({"s": [t.get("stage") or "" for t in tests]} if any(t.get("stage") for t in tests) else {})},
        "details": details,
        "names": names,
        "wall": round(timeline.wall, 6),
        "lanes": [[w, k] for w, k in timeline.lanes],
        "workers": [{"name": w.name, "slots": w.slots, "lanes": w.lanes, "busy_s": round(w.busy_s, 3),
                     "utilization": round(w.utilization, 4)} for w in timeline.workers],
        "bars": [[b.lane, round(b.start, 6), round(b.end, 6), b.assignment, b.attempt, b.state, b.marks, b.tests,
                  name_index[b.worker], name_index[b.node], b.resources] for b in timeline.bars],
        "segs": [[s.bar, s.test, round(s.start, 6), round(s.duration, 6), outcome_index.get(s.outcome, 0),
                  s.run, s.runs, 1 if s.fenced else 0, name_index[s.worker], name_index[s.node]]
                 for s in timeline.segments],
        "figures": {"ran": fig.ran, "p50": fig.p50, "p95": fig.p95, "p99": fig.p99,
                    "throughput": round(fig.throughput, 3), "slowest": fig.slowest},
    }
    for key in OPTIONAL:
        if report.get(key):
            data[key] = report[key]
    return data


def embed(data: Any) -> str:
    """JSON safe inside a <script> element: no `<`, `>` or `&` that a test's output could use to close it."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_html(report: Mapping[str, Any], events: Sequence[Event]) -> str:
    """The page of a full-view report (`farm.report.schema.expand`) and the suite's events."""
    title = f"farm {report.get('project') or ''} {report.get('suite_id') or ''}: {report.get('status') or ''}"
    head, tail = PAGE.split("{{DATA}}")
    return head.replace("{{TITLE}}", html.escape(title)) + embed(page_data(report, events)) + tail
