"""The plugin's record pipe: lines written to the record descriptor, whole lines at a time.

A line may be held (`hold`) and go out with the next one written: a finished test's line is
written together with the next test's start marker, one write per test (see run_mode)."""

from __future__ import annotations

import json
import os
from typing import Any


def json_line(obj: dict[str, Any]) -> str:
    """One object as a JSON line."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


class RecordPipe:
    """Writes lines to the record descriptor, whole lines at a time."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.held = ""
        # Children a test forks must not keep our pipe open after an exec.
        os.set_inheritable(fd, False)

    def emit(self, obj: dict[str, Any]) -> None:
        """Write one object as a JSON line now (after any held line)."""
        self.write(json_line(obj))

    def hold(self, text: str) -> None:
        """Keep lines to go out with the next write (or `flush`)."""
        self.held += text

    def flush(self) -> None:
        if self.held:
            self.write("")

    def write(self, text: str) -> None:
        """Write the held lines and `text` (whole lines) in one write where the pipe takes it."""
        data = (self.held + text).encode("utf-8", "replace")
        self.held = ""
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
