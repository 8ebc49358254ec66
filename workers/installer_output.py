"""An installer's output as errors show it: its last lines without noise, and the one line that
says why it failed (the remote environments' pip runs on the worker and on the remote)."""

from __future__ import annotations

from workers.suite_envs import EnvBuildError

#: pip's lines that say nothing about why it failed (progress bars, index locations it skipped).
_NOISE = ("━", "Looking in ", "WARNING: Location ", "Downloading ", "Collecting ")


def tail(text: str, lines: int = 15) -> str:
    """The installer's last lines, its noise left out."""
    kept = [line for line in text.strip().splitlines() if not line.strip().startswith(_NOISE)]
    return "\n".join(kept[-lines:])


def failure(what: str, output: str) -> EnvBuildError:
    """The error of an installer that failed: `what` and its last error line, then its last lines."""
    last = tail(output)
    said = [line.strip() for line in last.splitlines() if line.strip()]
    why = next((line for line in reversed(said) if "error" in line.lower()), said[-1] if said else "")
    return EnvBuildError(what + (f": {why[:300]}" if why else ""), last)
