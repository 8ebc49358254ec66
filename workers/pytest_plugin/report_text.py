"""The text of a pytest report as a record carries it: its message and its failure report, capped."""

from __future__ import annotations

import os
from typing import Any


def cap(text: str, limit: int) -> str:
    """Keep the head and tail of text longer than limit characters, saying what was cut."""
    if len(text) <= limit:
        return text
    half = max(0, limit // 2)
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut} characters cut by farm ...]\n{text[len(text) - half:]}"


#: The longest crash message kept (pytest's short summary shows it whole on CI and under -vv).
MESSAGE_CAP = 4096


def message(report: Any) -> str:
    """The message pytest's short summary would show for a report: the crash message, whole (as
    pytest shows it on CI and under -vv; elsewhere its first line), capped."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, lineno, reason)
        reason = str(longrepr[2])
        return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).strip()[:MESSAGE_CAP] if crash.message else ""
    text = str(longrepr or "")
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def longrepr_text(report: Any, limit: int) -> str:
    """The failure report as pytest prints it (a skip's as `path:line: reason`), capped; "" for a pass."""
    if report.passed:
        return ""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, lineno, reason)
        path, lineno, reason = longrepr
        try:
            path = os.path.relpath(str(path))
        except ValueError:
            pass
        return cap(f"{path}:{lineno}: {reason}", limit)
    try:
        text = report.longreprtext
    except Exception:  # a plugin's odd longrepr must not lose the record
        text = str(report.longrepr)
    return cap(text, limit)
