"""The fence files between a worker and a local runner (run-time balancing).

The worker writes `fence.json` ({"seq", "tail"}) in the run's directory; the runner plugin
(workers/pytest_plugin/fence.py) polls it and answers in `fence-reply.json` ({"seq", "cut"}: the
tests it will not run). Each is written whole (a temporary file renamed over it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

FENCE = "fence.json"
REPLY = "fence-reply.json"


def env(workdir: Path) -> dict[str, str]:
    """The runner's variables naming the two files."""
    return {"FARM_FENCE_FILE": str(workdir / FENCE), "FARM_FENCE_REPLY": str(workdir / REPLY)}


def write_fence(workdir: Path, seq: int, tail: tuple[str, ...]) -> None:
    tmp = workdir / f"{FENCE}.tmp"
    tmp.write_text(json.dumps({"seq": seq, "tail": list(tail)}), encoding="utf-8")
    os.replace(tmp, workdir / FENCE)


def read_reply(workdir: Path) -> tuple[int, list[str]] | None:
    """The runner's last answer, or None (none yet, or unreadable: asked again at the next loop)."""
    try:
        data = json.loads((workdir / REPLY).read_text(encoding="utf-8"))
        return int(data["seq"]), [str(t) for t in data["cut"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
