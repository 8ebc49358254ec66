"""A staged suite's stages in the end-of-run text: one line each (`stage smoke: 12 passed in 1.20s: passed`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from farm.outcomes import SUMMARY_ORDER
from farm.report.pytest_lines import format_duration, plural


def stage_lines(report: Mapping[str, Any]) -> list[str]:
    """A line per stage of the report's `stages` (none for a suite without stages): its counts, its
    wall time, its status, and the gates it failed."""
    lines = []
    for row in report.get("stages") or ():
        counts = row.get("counts") or {}
        parts = [plural(int(counts[o.value]), o) for o in SUMMARY_ORDER if counts.get(o.value)]
        status = str(row.get("status", ""))
        what = ", ".join(parts) or "no tests"
        if status == "not_started":
            lines.append(f"stage {row.get('name')}: {what}: not started")
            continue
        failed = [f"{g.get('gate')}: {g.get('detail')}" for g in row.get("gates") or () if g.get("verdict") == "failed"]
        tail = f" (gate failed: {'; '.join(failed)})" if failed else ""
        lines.append(f"stage {row.get('name')}: {what} in {format_duration(float(row.get('wall_s') or 0.0))}: "
                     f"{status}{tail}")
    return lines
