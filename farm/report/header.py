"""The session header of a suite, as pytest prints it before the progress dots."""

from __future__ import annotations

from collections.abc import Sequence

from farm.model import SessionInfo
from farm.report.pytest_lines import pytest_major, separator


def render_header(session: SessionInfo, *, collected: int, errors: int = 0, skipped: int = 0,
                  rootdir: str = "", workers: Sequence[tuple[str, int]] = (), collector: str = "") -> str:
    """pytest's session header, farm's way: the collecting worker's versions, the farm's size.

    `collected` counts the runnable tests (after deselection); `workers` are (name, slots) of the
    pool's live workers. Ends with a newline; "" below verbosity 0, as pytest -q prints none.
    """
    if session.verbose < 0:
        return ""
    lines = [separator("=", "test session starts")]
    if session.python:
        where = f" (on {collector})" if collector else ""
        lines.append(f"platform {session.platform} -- Python {session.python}, pytest-{session.pytest}"
                     f"{', pluggy-' + session.pluggy if session.pluggy else ''}{where}")
    if pytest_major(session.pytest) < 8:  # pytest 7 puts them on one line
        lines.append(", ".join(x for x in (f"rootdir: {rootdir}" if rootdir else "",
                                          f"configfile: {session.configfile}" if session.configfile else "") if x))
        lines = [line for line in lines if line]
    else:
        if rootdir:
            lines.append(f"rootdir: {rootdir}")
        if session.configfile:
            lines.append(f"configfile: {session.configfile}")
    if session.plugins:
        lines.append(f"plugins: {session.plugins}")
    if workers:
        slots = {n for _, n in workers}
        size = f"{len(workers)} worker{'s' if len(workers) != 1 else ''}"
        lines.append(f"farm: {size} x {slots.pop()} slots" if len(slots) == 1 else
                     f"farm: {size}, {sum(n for _, n in workers)} slots")
    total = collected + session.deselected
    line = f"collected {total} item{'' if total == 1 else 's'}"
    if errors:
        line += f" / {errors} error{'s' if errors != 1 else ''}"
    if session.deselected:
        line += f" / {session.deselected} deselected"
    if skipped:
        line += f" / {skipped} skipped"
    if session.deselected:
        line += f" / {collected} selected"
    lines.append(line)
    return "\n".join(lines) + "\n"
