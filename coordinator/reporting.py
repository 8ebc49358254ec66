"""The coordinator's report building: `farm.report.build` (in farm, so `farm results --from-events` can use it)."""

from __future__ import annotations

from farm.report.build import build_report, crash_blame, iso, slowest_phases

__all__ = ["build_report", "crash_blame", "iso", "slowest_phases"]
