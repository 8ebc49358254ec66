"""Collect mode: a record per collected item and per failed or skipped collector, then the session's."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import pytest

from .collect_shard import CollectShard
from .record_pipe import RecordPipe
from .report_text import longrepr_text, message


class CollectRecorder:
    """Collect mode: every collected item, every collector that failed or was skipped, and the session."""

    def __init__(self, config: Any, emitter: RecordPipe, maxfail: int, shard: CollectShard | None = None) -> None:
        self.config = config
        self.shard = shard  # one shard of a collection split by file (collect_shard.py), or None
        self.emitter = emitter
        self.maxfail = maxfail
        self.deselected = 0
        self.cap = int(os.environ.get("FARM_LONGREPR_CAP", "262144"))

    def pytest_deselected(self, items: Any) -> None:
        self.deselected += len(items)

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed or report.skipped:
            self.emitter.emit({
                "k": "collect",
                "id": report.nodeid,
                "cat": "error" if report.failed else "skipped",
                "msg": message(report),
                "longrepr": longrepr_text(report, self.cap),
            })

    def pytest_collection_finish(self, session: Any) -> None:
        seen: set[str] = set()
        shard = self.shard
        for item in session.items:
            if item.nodeid not in seen:
                seen.add(item.nodeid)
                if shard is None:
                    self.emitter.emit({"k": "item", "id": item.nodeid})
                else:
                    self.emitter.emit({"k": "item", "id": item.nodeid, "f": shard.file_of(item)})
        if shard is not None:
            self.emitter.emit(shard.files_line(session.items))
        self.emitter.emit(session_line(self.config, self.maxfail, self.deselected))


def session_line(config: Any, maxfail: int, deselected: int) -> dict[str, Any]:
    """The session's effective options and versions, as farm.model.SessionInfo holds them."""
    option = config.option
    durations = getattr(option, "durations", None)
    inipath = getattr(config, "inipath", None)
    configfile = ""
    if inipath is not None:
        try:
            configfile = os.path.relpath(str(inipath), str(config.rootpath))
        except ValueError:
            configfile = str(inipath)
    try:
        import pluggy
        pluggy_version = str(pluggy.__version__)
    except (ImportError, AttributeError):
        pluggy_version = ""
    return {
        "plugins": plugins(config),
        "k": "session", "id": "", "maxfail": maxfail, "verbose": int(getattr(option, "verbose", 0) or 0),
        "reportchars": str(getattr(option, "reportchars", "fE") or ""),
        "tbstyle": str(getattr(option, "tbstyle", "auto") or "auto"),
        "durations": -1 if durations is None else int(durations),
        "durations_min": -1.0 if getattr(option, "durations_min", None) is None else float(option.durations_min),
        "deselected": deselected, "configfile": configfile, "platform": sys.platform,
        "python": platform.python_version(), "pytest": str(pytest.__version__), "pluggy": pluggy_version,
    }


def plugins(config: Any) -> str:
    """The installed plugins as pytest's header names them (`xdist-3.8.0`)."""
    names: list[str] = []
    try:
        for _plugin, dist in config.pluginmanager.list_plugin_distinfo():
            project = getattr(dist, "project_name", None) or dist.metadata["name"]
            name = f"{project}-{dist.version}".removeprefix("pytest-")
            if name not in names:
                names.append(name)
    except Exception:  # an odd distribution must not cost the collection
        return ""
    return ", ".join(names)
