"""Run mode: narrow the collection to the assigned tests' files, and check it against the plan's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .record_pipe import RecordPipe


def file_part(nodeid: str) -> str:
    """The part of a node id before its first `::` (a path relative to the rootdir, for files)."""
    return nodeid.split("::", 1)[0]


def narrowed_args(rootpath: Path, wanted: list[str], args: list[str]) -> list[str]:
    """The positional arguments a runner collects: the assigned tests' files, when every one of them
    is a file under the rootdir; otherwise `args` (the user's own), so nothing is collected from less
    than the plan was. Ids whose first part is no file (a plugin's own collector, a file this
    environment lacks) thus fall back to the whole collection, where they are found or reported
    missing, never narrowed away."""
    files: list[str] = []
    for nodeid in wanted:
        part = file_part(nodeid)
        if part not in files:
            files.append(part)
    paths = [rootpath / f for f in files]
    if not paths or not all(p.is_file() for p in paths):
        return list(args)
    return [str(p) for p in paths]


class CollectionCheck:
    """Compares what this runner collected in each of its files with what the plan's collection
    found there ({file: items}): a file with more or fewer items gets a "stale" line, and the
    worker drops the cached collection (workers/collection_cache.py). Runs after every other
    plugin's modifyitems (-k, -m, --deselect, the user's hooks) but before the RunRecorder keeps
    only the assigned tests: both are trylast, and pluggy calls a trylast hook registered earlier
    before one registered later, so it is registered first."""

    def __init__(self, emitter: RecordPipe, planned: dict[str, int]) -> None:
        self.emitter = emitter
        self.planned = planned

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session: Any, config: Any, items: list[Any]) -> None:
        counts: dict[str, int] = {}
        for nodeid in dict.fromkeys(item.nodeid for item in items):
            part = file_part(nodeid)
            if part in self.planned:
                counts[part] = counts.get(part, 0) + 1
        for part, planned in self.planned.items():
            if counts.get(part, 0) != planned:
                self.emitter.emit({"k": "stale", "id": part, "planned": planned, "collected": counts.get(part, 0)})
