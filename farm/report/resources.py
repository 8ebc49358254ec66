"""The terminal's lines on resources and leaks: each assignment's peak memory and CPU (-v), what tests left behind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from farm.report.pytest_lines import separator
from farm.resources import format_size

#: The assignments listed under -v, those with the highest peak first.
LISTED = 10


def resource_lines(report: Mapping[str, Any]) -> list[str]:
    """-v: a section listing the measured assignment attempts, highest peak RSS first."""
    measured = [a for a in report.get("assignments") or () if a.get("resources")]
    if not measured:
        return []
    measured.sort(key=lambda a: -int(a["resources"].get("peak_rss_bytes") or 0))
    lines = [separator("=", "resources per assignment")]
    for a in measured[:LISTED]:
        r = a["resources"]
        lines.append(f"{a.get('id')}#{a.get('attempt')} peak RSS {format_size(int(r.get('peak_rss_bytes') or 0))}, "
                     f"CPU {float(r.get('cpu_s') or 0.0):.2f}s on {a.get('worker') or '?'}")
    if len(measured) > LISTED:
        lines.append(f"... and {len(measured) - LISTED} more (the JSON report's assignments[].resources)")
    return lines


def leak_lines(report: Mapping[str, Any]) -> list[str]:
    """A short-summary line per test that left something behind: "leaks: 1 process left by T (sleep 1000, killed)"."""
    by_test: dict[str | None, list[str]] = {}
    for leak in report.get("leaks") or ():
        by_test.setdefault(leak.get("test"), []).append(str(leak.get("detail") or ""))
    lines = []
    for test, details in by_test.items():
        n = len(details)
        shown = "; ".join(details[:3]) + (f"; ... {n - 3} more" if n > 3 else "")
        who = test or "the session (before its first test)"
        lines.append(f"leaks: {n} process{'es' if n != 1 else ''} left by {who} ({shown}, killed)")
    return lines
