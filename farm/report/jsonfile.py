"""Writing report files (JSON, JUnit XML, HTML) atomically, with one-line errors for bad paths."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.errors import UsageError
from farm.report.junit import render_junit
from farm.report.schema import compact, dumps, expand

if TYPE_CHECKING:
    from farm.events import Event


def write_json(report: Mapping[str, Any], path: Path) -> None:
    """Write the report's lean document (schema 2; any form is accepted) as UTF-8 JSON to `path`,
    atomically: indented, one test per line, non-ASCII kept. Its failure `analysis` is written
    last, for readers of the file: derived from the rest, readers of farm's recompute it."""
    full = expand(report)  # never an `analysis` carried in: always the one of these tests
    doc = compact(full, expanded=True)
    doc["analysis"] = full["analysis"]
    text = dumps(doc)
    # A lone surrogate cannot be UTF-8; as `\udcxx` it is still a valid JSON escape for it.
    write_atomic(path, text.encode("utf-8", "backslashreplace"))


def write_junit(report: Mapping[str, Any], path: Path) -> None:
    """Write the report as JUnit XML to `path`, atomically."""
    write_atomic(path, render_junit(report))


def write_html(report: Mapping[str, Any], events: Sequence[Event], path: Path) -> None:
    """Write the HTML report of a full-view report and the suite's events to `path`, atomically."""
    from farm.report.html import render_html

    write_atomic(path, render_html(report, events).encode("utf-8", "backslashreplace"))


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`.

    Readers see the old file or the whole new one, never a part. The parent directory must
    exist; any failure is a `UsageError` with a one-line message.
    """
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: no such directory")
    tmp = parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise
    except FileNotFoundError as exc:
        raise UsageError(f"cannot write {path}: no such directory") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"cannot write {path}: it is a directory") from exc
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"cannot write {path}: {reason}") from exc
