"""The plugin's record pipe: JSON lines written to the record descriptor, whole lines at a time."""

from __future__ import annotations

import json
import os
from typing import Any


class RecordPipe:
    """Writes JSON lines to the record descriptor, whole lines at a time."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        # Children a test forks must not keep our pipe open after an exec.
        os.set_inheritable(fd, False)

    def emit(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8", "replace")
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
